"""A GAN's discriminator, with the generator trained inside the step

gdtui steps the discriminator D. As in a DCGAN loop, each forward also takes
one step of the generator G with its own Adam optimizer, and draws fresh noise.
"""

import torch
import torch.nn.functional as F
from torch import nn

G = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
D = nn.Sequential(nn.Linear(2, 8), nn.LeakyReLU(0.2), nn.Linear(8, 1))
optimizer_g = torch.optim.Adam(G.parameters(), lr=0.01)
optimizer = torch.optim.Adam(D.parameters(), lr=0.01)

real = torch.randn(16, 2) * 0.5 + 1.0
data = (real, torch.ones(16, 1))


def model(x):
    fake = G(torch.randn(x.shape[0], 4))
    g_loss = F.binary_cross_entropy_with_logits(D(fake), torch.ones(x.shape[0], 1))
    optimizer_g.zero_grad()
    g_loss.backward(inputs=list(G.parameters()))
    optimizer_g.step()
    return torch.cat([D(x), D(fake.detach())])


def loss_fn(pred, target):
    return F.binary_cross_entropy_with_logits(pred, torch.cat([target, torch.zeros_like(target)]))
