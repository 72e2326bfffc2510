"""NOT gate with nn.Linear, and a shape bug that stops it learning

Follows the tutorial notebook of seed 003 ("Gradient descent with PyTorch",
the nn.Linear version of the NOT gate): the neuron is now
sigmoid(nn.Linear(1, 1)(x)), SGD with learning rate 10, the same
x = [[0], [1]] and y = [1, 0], and the same loss
torch.mean(torch.square(a - y)).

What to watch: the shapes. nn.Linear returns one row per sample, so a has
shape (2, 1), while y has shape (2,). a - y broadcasts to a (2, 2) matrix
that compares EVERY prediction with BOTH targets (the notebook prints this
2 x 2 loss). The best a network can then do is predict 0.5 for everything:
the loss goes to 0.25 and the weight and bias to 0, and the NOT gate is
never learned. The notebook shows exactly this (0.2969, 0.2557, 0.2525,
0.2513, 0.2507). The fix is a target of the same shape,
y = torch.tensor([[1], [0]], dtype=torch.float32) (or y.view(-1, 1)):
then the loss falls below 0.001 within 200 steps.

The notebook does not seed nn.Linear, so its numbers cannot be reproduced;
this scenario leaves the seed to gdtui's --seed (default 0). With --seed 0
the losses are 0.2669, 0.2545, 0.2517, 0.2507, 0.2503, ..., and after 200
steps the loss is 0.25 and both predictions are 0.5.
"""
import torch

x = torch.tensor([[0], [1]], dtype=torch.float32)  # (2, 1)
y = torch.tensor([1, 0], dtype=torch.float32)  # (2,) -- not (2, 1)!


class NotGate(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(in_features=1, out_features=1)

    def forward(self, x):
        return torch.sigmoid(self.linear(x))  # (2, 1)


def mean_squared(a, y):
    return torch.mean(torch.square(a - y))  # (2, 1) - (2,) -> (2, 2)


# What gdtui reads:
model = NotGate()
loss_fn = mean_squared
data = (x, y)
optimizer = torch.optim.SGD(model.parameters(), lr=10)
steps = 200
