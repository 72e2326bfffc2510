"""A learning rate far too large: the loss overflows to Inf within a few dozen steps"""
import torch

x = torch.tensor(3.0, requires_grad=True)


def loss():
    return x ** 4


optimizer = torch.optim.SGD([x], lr=1.0)
