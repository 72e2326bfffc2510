"""A 64x64 weight: too large to print, so the table and the detail view summarise it"""
import torch

torch.manual_seed(0)
inputs = torch.randn(32, 64)
targets = torch.randn(32, 64)
model = torch.nn.Linear(64, 64)
loss_fn = torch.nn.MSELoss()
data = (inputs, targets)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
