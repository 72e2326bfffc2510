"""The loss function calls sys.exit() when the loss gets small."""
import sys

import torch

w = torch.zeros(1, requires_grad=True)
model = lambda x: x * w


def loss_fn(pred, y):
    loss = ((pred - y) ** 2).mean()
    if loss < 0.5:
        sys.exit("done")
    return loss


data = (torch.ones(4, 1), torch.ones(4, 1))
optimizer = torch.optim.SGD([w], lr=0.1)
