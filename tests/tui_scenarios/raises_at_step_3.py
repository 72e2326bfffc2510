"""Raises in the loss on the third step, to show the error panel

The loss function counts its calls; the load check calls it once and then
puts `calls` back, so the third step is the third call.
"""
import torch

w = torch.tensor(1.0, requires_grad=True)
x = torch.tensor([1.0, 2.0])
y = torch.tensor([2.0, 4.0])
calls = [0]


def model(x):
    return w * x


def loss_fn(pred, y):
    calls[0] += 1
    if calls[0] == 3:
        raise ValueError("the loss refuses to run a third step")
    return ((pred - y) ** 2).mean()


data = (x, y)
optimizer = torch.optim.SGD([w], lr=0.1)
