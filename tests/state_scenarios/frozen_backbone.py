"""A frozen backbone with a trained head, as in transfer learning

The backbone's 512x512 weight does not require grad and no optimizer holds
it: rewind watches it rather than copying it at every checkpoint.
"""

import torch
from torch import nn

backbone = nn.Linear(512, 512)
backbone.requires_grad_(False)
head = nn.Linear(512, 1)
model = nn.Sequential(backbone, nn.ReLU(), head)

x = torch.randn(8, 512)
data = (x, x[:, :1])
loss_fn = nn.MSELoss()
optimizer = torch.optim.SGD(head.parameters(), lr=0.01)
