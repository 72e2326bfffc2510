"""A hand-written autograd Function whose backward is wrong: d(x³)/dx given as x² instead of 3x²

The gradient checker must call it a mismatch, kinks or not: a ReLU follows it.
"""
import torch
from torch import nn


class Cube(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x**3

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * x**2  # wrong: 3 * x**2


torch.manual_seed(6)
inputs = torch.randn(12, 5)
targets = torch.randn(12, 1)
layer = nn.Linear(5, 8)
head = nn.Linear(8, 1)


def model(x):
    return head(torch.relu(Cube.apply(layer(x))))


loss_fn = nn.MSELoss()
data = (inputs, targets)
optimizer = torch.optim.SGD([*layer.parameters(), *head.parameters()], lr=0.05)
