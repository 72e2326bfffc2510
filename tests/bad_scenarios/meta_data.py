"""Inputs on the meta device."""
import torch

model = torch.nn.Linear(2, 1)
loss_fn = torch.nn.MSELoss()
data = (torch.randn(4, 2, device="meta"), torch.randn(4, 1))
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
