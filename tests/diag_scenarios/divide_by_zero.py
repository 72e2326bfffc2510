"""A layer that divides by zero at step 5

Layer 3 (body.3) divides its input by a scale kept in a buffer. The scale
starts at 5 and each forward lowers it by one before dividing, so the forward
of step 5 divides by 0: body.3's output goes Inf, the last layer turns the
Infs into NaN, and the loss of step 5 is NaN. Every step before is finite.
"""
import torch
from torch import nn


class Divide(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("scale", torch.tensor(5.0))

    def forward(self, x):
        with torch.no_grad():
            self.scale -= 1
        return x / self.scale


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 8), Divide(), nn.Linear(8, 1))

    def forward(self, x):
        return self.body(x)


x = torch.randn(16, 3)
y = x.sum(dim=1, keepdim=True)
model = Net()
loss_fn = nn.MSELoss()
data = (x, y)
optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
