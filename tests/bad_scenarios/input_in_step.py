"""The model asks the terminal a question at step 2 (the load check's call is undone with the rest of its state)."""
import torch

w = torch.zeros(1, requires_grad=True)
calls = []


def model(x):
    calls.append(1)
    if len(calls) == 2:  # step 1 is call 1: the load check put `calls` back as it found it
        input("continue? ")
    return x * w


loss_fn = lambda pred, y: ((pred - y) ** 2).mean()
data = (torch.ones(4, 1), torch.ones(4, 1))
optimizer = torch.optim.SGD([w], lr=0.1)
