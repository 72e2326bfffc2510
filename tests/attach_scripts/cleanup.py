"""A loop with a finally block and an atexit handler: gdtui's stop must run both, as Ctrl-C would."""
import atexit

import torch

atexit.register(lambda: print("atexit ran"))
torch.manual_seed(0)
w = torch.nn.Parameter(torch.randn(3))
optimizer = torch.optim.SGD([w], lr=0.1)
try:
    for step in range(10):
        optimizer.zero_grad()
        loss = (w**2).sum()
        loss.backward()
        optimizer.step()
        print(repr(loss.item()))
except KeyboardInterrupt:
    print("interrupted at", step)
finally:
    print("finally ran")
