"""A deep narrow MLP with 500 trained tensors: 250 Linear(16, 16) layers with tanh, SGD, one batch of 32."""
import torch
from torch import nn

torch.manual_seed(0)
layers = []
for _ in range(250):
    layers += [nn.Linear(16, 16), nn.Tanh()]
model = nn.Sequential(*layers)
x = torch.randn(32, 16)
y = torch.randn(32, 16)
loss_fn = nn.MSELoss()
data = (x, y)
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
