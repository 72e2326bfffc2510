"""A function model that calls BatchNorm modules

`model` is a plain function over module-level layers, so gdtui's own
snapshot of "the model's buffers" has no model to read them from.
"""

import torch
from torch import nn

fc1 = nn.Linear(3, 8)
bn1 = nn.BatchNorm1d(8)
fc2 = nn.Linear(8, 1)

x = torch.randn(20, 3)
data = (x, x.sum(dim=1, keepdim=True) ** 2)


calls = 0


def model(inputs):
    global calls
    calls += 1
    return fc2(torch.relu(bn1(fc1(inputs))))


loss_fn = nn.MSELoss()
optimizer = torch.optim.SGD([*fc1.parameters(), *bn1.parameters(), *fc2.parameters()], lr=0.05, momentum=0.9)
