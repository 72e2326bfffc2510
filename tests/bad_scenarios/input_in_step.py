"""The model asks the terminal a question on its third call (the load check is the first): at step 2."""
import torch

w = torch.zeros(1, requires_grad=True)
calls = []


def model(x):
    calls.append(1)
    if len(calls) == 3:  # the load check is call 1, step 1 is call 2
        input("continue? ")
    return x * w


loss_fn = lambda pred, y: ((pred - y) ** 2).mean()
data = (torch.ones(4, 1), torch.ones(4, 1))
optimizer = torch.optim.SGD([w], lr=0.1)
