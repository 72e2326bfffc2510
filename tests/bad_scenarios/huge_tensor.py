"""One trained tensor of 1e8 elements (400 MB of float32): w fitted to ones by the mean squared error.

With lr = N/4 each step halves the distance to 1: w goes 0, 0.5, 0.75, so the
loss goes 1, 0.25, 0.0625. A snapshot (w, its gradient) is larger than the
default --history-mb 256, so rewind is off.
"""
import torch

N = 100_000_000
w = torch.zeros(N, requires_grad=True)
loss = lambda: ((w - 1.0) ** 2).mean()
optimizer = torch.optim.SGD([w], lr=N / 4)
