"""The optimizer holds a tensor the model never uses."""
import torch

w = torch.zeros(1, requires_grad=True)
forgotten = torch.zeros(1, requires_grad=True)
model = lambda x: x * w
loss_fn = lambda pred, y: ((pred - y) ** 2).mean()
data = (torch.ones(4, 1), torch.ones(4, 1))
optimizer = torch.optim.SGD([w, forgotten], lr=0.1)
