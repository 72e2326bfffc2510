"""loss_fn forgets the mean and returns one loss per sample."""
import torch

w = torch.zeros(1, requires_grad=True)
model = lambda x: x * w
loss_fn = lambda pred, y: (pred - y) ** 2
data = (torch.ones(4, 1), torch.ones(4, 1))
optimizer = torch.optim.SGD([w], lr=0.1)
