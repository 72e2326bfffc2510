"""A hand-written linear layer whose weight gradient is 1% too large, in a two-ReLU net

Perturbing the whole weight along a direction moves every ReLU downstream, so
the difference along it crosses corners; the gradient checker must still call
the weight a mismatch rather than excuse it as a kink.
"""
import torch
from torch import nn


class Linear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w):
        ctx.save_for_backward(x, w)
        return x @ w.t()

    @staticmethod
    def backward(ctx, grad):
        x, w = ctx.saved_tensors
        return grad @ w, 1.01 * grad.t() @ x  # wrong: 1% too large


torch.manual_seed(0)
w1 = nn.Parameter(torch.randn(128, 64) / 8)
layer2 = nn.Linear(128, 128)
layer3 = nn.Linear(128, 1)


def model(x):
    return layer3(torch.relu(layer2(torch.relu(Linear.apply(x, w1)))))


loss_fn = nn.MSELoss()
data = (torch.randn(64, 64), torch.randn(64, 1))
optimizer = torch.optim.SGD([w1, *layer2.parameters(), *layer3.parameters()], lr=0.1)
