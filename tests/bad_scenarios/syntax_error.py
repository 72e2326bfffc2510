"""A scenario with a syntax error on line 5."""
import torch

w = torch.zeros(1, requires_grad=True)
def model(x) return x * w
