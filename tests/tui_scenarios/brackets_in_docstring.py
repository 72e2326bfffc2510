"""Fit y[i] = w * x[i] [/] with [bold]square brackets[/bold] in the title

The model predicts y[i] = w * x[i] for every i; the loss is mean((y[i] - t[i])**2).
A closing tag with nothing to close: [/]. A style that is not one: [not a style].
"""
import torch

w = torch.tensor(1.0, requires_grad=True)
x = torch.tensor([1.0, 2.0])
t = torch.tensor([2.0, 4.0])


def model(x):
    return w * x


loss_fn = torch.nn.MSELoss()
data = (x, t)
optimizer = torch.optim.SGD([w], lr=0.1)
