"""Fit y = x^2 with a Dropout layer, and an eval-mode metric

nn.Linear(1, 8), ReLU, Dropout(0.25), nn.Linear(8, 1) over 32 points, full
batch, plain SGD. The metric evaluates the whole model in eval mode, so it
has no dropout; the training loss draws a mask from the global RNG, so anything
that draws from it outside a step (a chart run in training mode) changes
the run (issue 12 case 4).
"""
import torch
from torch import nn

x = torch.linspace(-2, 2, 32).unsqueeze(1)
y = x ** 2 + 0.1 * torch.randn(32, 1)
model = nn.Sequential(nn.Linear(1, 8), nn.ReLU(), nn.Dropout(0.25), nn.Linear(8, 1))
data = (x, y)
loss_fn = nn.MSELoss()


def eval_mse(pred, target):
    model.eval()
    out = loss_fn(model(x), target)
    model.train()
    return out


metrics = {"eval_mse": eval_mse}
optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
