"""Two weights, SGD with momentum 0.9: manual mode must follow vanilla SGD instead

A line y = a*x + c fitted to four points, so the app tests can compare the
manual update with a plain PyTorch loop written out in the test.
"""
import torch

x = torch.tensor([1.0, 2.0, 3.0, 4.0])
y = torch.tensor([3.0, 5.0, 7.0, 9.0])
a = torch.tensor(0.5, requires_grad=True)
c = torch.tensor(-0.5, requires_grad=True)


def line(x):
    return a * x + c


def loss_fn(pred, y):
    return ((pred - y) ** 2).mean()


model = line
data = (x, y)
optimizer = torch.optim.SGD([a, c], lr=0.01, momentum=0.9)
