# coding: klingon
"""Café au lait: one weight fits y = 2x, from a file saved with an unknown coding"""
import torch

x = torch.tensor([[1.0], [2.0], [3.0]])
y = 2 * x
w = torch.tensor([[0.5]], requires_grad=True)


def model(x):
    return x @ w


loss_fn = torch.nn.MSELoss()
data = (x, y)
optimizer = torch.optim.SGD([w], lr=0.05)
label = "naïve"  # a non-ASCII byte outside the docstring too
