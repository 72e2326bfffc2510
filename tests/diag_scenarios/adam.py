"""Adam on a line fit: each element moves about lr, whatever its gradient

A line y = a*x + c fitted to four points, whose gradients for a and c differ
by about 3x at the start. Adam divides each gradient by the square root of its
own running mean square, so both move about lr = 0.1 per step, while manual
mode (vanilla SGD) moves each by lr times its gradient.
"""
import torch

x = torch.tensor([1.0, 2.0, 3.0, 4.0])
y = torch.tensor([3.0, 5.0, 7.0, 9.0])
a = torch.tensor([0.5], requires_grad=True)
c = torch.tensor([-0.5, 0.25], requires_grad=True)


def line(x):
    return a * x[:, None] + c


def loss_fn(pred, y):
    return ((pred - y[:, None]) ** 2).mean()


model = line
data = (x, y)
optimizer = torch.optim.Adam([a, c], lr=0.1)
steps = 20
