"""The NOT gate with a forward that takes 0.15 s, so key presses arrive while a step runs

Same numbers as scenarios/not_gate.py: w, b after step 3 are 2.5405035, 1.6586863.
"""
import time

import torch

x = torch.tensor([[0.0], [1.0]])
y = torch.tensor([1.0, 0.0])
w = torch.tensor([[3.0]], requires_grad=True)
b = torch.tensor([[1.0]], requires_grad=True)


def model(x):
    time.sleep(0.15)
    return torch.sigmoid(w @ x.T + b)


def loss_fn(a, y):
    return torch.mean(torch.square(a - y))


data = (x, y)
optimizer = torch.optim.SGD([w, b], lr=10)
