"""The tutorial's own variable: a list called params."""
import torch

w = torch.tensor([0.5], requires_grad=True)
b = torch.tensor([0.0], requires_grad=True)
params = [w, b]
data = (torch.tensor([[1.0], [2.0]]), torch.tensor([[2.0], [4.0]]))
def model(x):
    return x * w + b
loss_fn = torch.nn.MSELoss()
optimizer = torch.optim.SGD(params, lr=0.1)
