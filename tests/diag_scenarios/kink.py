"""A ReLU exactly at its corner: relu(w * x) with w = 0

At w = 0 the pre-activation is exactly 0, where the ReLU's slope jumps from 0
to 1. Autograd takes the slope 0 there; a central difference averages the two
sides. The gradient checker must call this a kink, not a wrong gradient.
"""
import torch

x = torch.tensor([2.0])
y = torch.tensor([1.5])
w = torch.tensor(0.0, requires_grad=True)
v = torch.tensor(0.5, requires_grad=True)


def model(x):
    return torch.relu(w * x) + v * x


def loss_fn(pred, y):
    return ((pred - y) ** 2).mean()


data = (x, y)
optimizer = torch.optim.SGD([w, v], lr=0.01)
