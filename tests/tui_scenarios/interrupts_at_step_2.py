"""Raises KeyboardInterrupt in the loss on the second step: scenario code, not a Ctrl-C

The loss function counts its calls; the load check calls it once and then
puts `calls` back, so the second step is the second call.
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
    if calls[0] == 2:
        raise KeyboardInterrupt("stopped by the scenario")
    return ((pred - y) ** 2).mean()


data = (x, y)
optimizer = torch.optim.SGD([w], lr=0.1)
