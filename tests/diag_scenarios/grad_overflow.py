"""A gradient that overflows while the forward stays finite

body.1 scales by 1e-30 and body.2 and body.3 by 1e20 each: the forward's
numbers stay within float32 (about 1e10 at the output), but backward
multiplies the gradient by 1e20 twice on its way back, so the gradient of
body.1's output is about 1e49, which float32 holds as Inf. The loss of step
1 is finite; the gradients of body.0 are not. body.0 is wide (64 x 32), so a
quiet run leaves its NaN/Inf check to later.
"""
import torch
from torch import nn


class Scale(nn.Module):
    def __init__(self, factor):
        super().__init__()
        self.factor = factor

    def forward(self, x):
        return x * self.factor


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(64, 32), Scale(1e-30), Scale(1e20), Scale(1e20), nn.Linear(32, 1))

    def forward(self, x):
        return self.body(x)


model = Net()
x = torch.randn(8, 64)
y = torch.zeros(8, 1)
loss_fn = nn.MSELoss()
data = (x, y)
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
