"""A parameter starts at infinity, though the loss stays finite: sigmoid saturates."""
import torch

w = torch.tensor([float("inf")], requires_grad=True)
x = torch.tensor([[1.0], [2.0]])
y = torch.tensor([[1.0], [1.0]])
model = lambda x: torch.sigmoid(x * w)
loss_fn = lambda pred, y: ((pred - y) ** 2).mean()
data = (x, y)
optimizer = torch.optim.SGD([w], lr=0.1)
