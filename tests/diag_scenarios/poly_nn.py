"""Fit y = 0.9 + 0.5x + 3x^2 + 2.4x^3 with nn.Linear on the features x, x^2, x^3

The polynomial regression of seed 000 written with torch.nn: one nn.Linear(3, 1)
over the three powers of x, mean squared error, plain SGD, in manual mode. Its
float32 updates round differently in the two modes: p -= lr * grad rounds
lr * grad first, SGD's p.add_(grad, alpha=-lr) does not (issue 12 case 35).
"""
import torch
from torch import nn

x = torch.linspace(-2, 2, 64).unsqueeze(1)
features = torch.cat([x, x ** 2, x ** 3], dim=1)
y = 0.9 + 0.5 * x + 3 * x ** 2 + 2.4 * x ** 3 + 0.1 * torch.randn(64, 1)

model = nn.Linear(3, 1)
data = (features, y)
loss_fn = nn.MSELoss()
lr = 0.003
optimizer = torch.optim.SGD(model.parameters(), lr=lr)
mode = "manual"
