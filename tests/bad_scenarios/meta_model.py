"""A model built on the meta device: shapes, but no values."""
import torch

model = torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1, device="meta"))
loss_fn = torch.nn.MSELoss()
data = (torch.randn(8, 2), torch.randn(8, 1))
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
