"""A forward that blocks for 30 s at step 2 (the load check and step 1 are quick)"""
import time

import torch

w = torch.zeros(1, requires_grad=True)
calls = []


def model(x):
    calls.append(1)
    if len(calls) == 2:  # the load check put `calls` back as it found it
        time.sleep(30)
    return x * w


loss_fn = lambda pred, y: ((pred - y) ** 2).mean()
data = (torch.ones(3, 1), torch.ones(3, 1))
optimizer = torch.optim.SGD([w], lr=0.1)
