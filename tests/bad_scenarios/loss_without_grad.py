"""The loss is computed on detached predictions, so it has no grad."""
import torch

w = torch.zeros(1, requires_grad=True)
model = lambda x: x * w
loss_fn = lambda pred, y: ((pred.detach() - y) ** 2).mean()
data = (torch.ones(4, 1), torch.ones(4, 1))
optimizer = torch.optim.SGD([w], lr=0.1)
