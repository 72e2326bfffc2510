"""The trained tensor was created without requires_grad."""
import torch

w = torch.zeros(1)
model = lambda x: x * w
loss_fn = lambda pred, y: ((pred - y) ** 2).mean()
data = (torch.ones(4, 1), torch.ones(4, 1))
optimizer = torch.optim.SGD([w], lr=0.1)
