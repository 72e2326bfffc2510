"""loss_fn returns a Python int."""
import torch

w = torch.zeros(1, requires_grad=True)
model = lambda x: x * w
loss_fn = lambda pred, y: 3
data = (torch.ones(4, 1), torch.ones(4, 1))
optimizer = torch.optim.SGD([w], lr=0.1)
