"""Sleeps while it loads, for a signal that arrives then"""
import time

import torch

print("loading", flush=True)
for _ in range(1200):  # short sleeps: a signal the kernel hands another thread is seen within 0.1 s
    time.sleep(0.1)
x = torch.tensor(1.0, requires_grad=True)


def loss():
    return x * x


lr = 0.1
