"""A NOT gate that prints a line at every 50th step, and writes one straight to fd 1 at every
100th, for the trainer's step marks in a run (issue 13). Steps are counted by calls of the model."""

import os

import torch

w = torch.tensor([0.5], requires_grad=True)
b = torch.tensor([0.1], requires_grad=True)
data = (torch.tensor([[0.0], [1.0]]), torch.tensor([[1.0], [0.0]]))
loss_fn = lambda pred, y: ((pred - y) ** 2).mean()
optimizer = torch.optim.SGD([w, b], lr=0.5)
calls = [0]


def model(x):
    calls[0] += 1
    step = calls[0]
    if step % 50 == 0:
        print(f"printed at step {step}")
    if step % 100 == 0:
        os.write(1, f"fd1 at step {step}\n".encode())
    return torch.sigmoid(x * w + b)
