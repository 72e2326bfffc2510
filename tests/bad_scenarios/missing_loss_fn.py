"""A model and data but no loss_fn."""
import torch

w = torch.zeros(1, requires_grad=True)
model = lambda x: x * w
data = (torch.ones(4, 1), torch.ones(4, 1))
optimizer = torch.optim.SGD([w], lr=0.1)
