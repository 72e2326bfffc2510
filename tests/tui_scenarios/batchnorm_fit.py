"""Fit y = x^2 with a BatchNorm layer, and an eval-mode metric

nn.Linear(1, 8), BatchNorm1d(8), ReLU, nn.Linear(8, 1) over 32 points, full
batch, plain SGD. The metric evaluates the whole model in eval mode, so it
reads BatchNorm's running statistics: anything that updates them outside a
step (a chart run in training mode) changes it (issue 12 case 4).
"""
import torch
from torch import nn

x = torch.linspace(-2, 2, 32).unsqueeze(1)
y = x ** 2 + 0.1 * torch.randn(32, 1)
model = nn.Sequential(nn.Linear(1, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 1))
data = (x, y)
loss_fn = nn.MSELoss()


def eval_mse(pred, target):
    model.eval()
    out = loss_fn(model(x), target)
    model.train()
    return out


metrics = {"eval_mse": eval_mse}
optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
