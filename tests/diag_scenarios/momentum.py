"""SGD with momentum 0.9 on a one-weight fit

Fit y = 3x with one weight w from w = 0, mean squared error, SGD with
lr = 0.01 and momentum 0.9. The first step equals plain SGD (the momentum
buffer starts as the gradient); from the second on, each step adds 0.9 times
the previous one.
"""
import torch

x = torch.tensor([1.0, 2.0, -1.0])
y = 3 * x
w = torch.tensor(0.0, requires_grad=True)


def model(x):
    return w * x


def loss_fn(pred, y):
    return ((pred - y) ** 2).mean()


data = (x, y)
optimizer = torch.optim.SGD([w], lr=0.01, momentum=0.9)
