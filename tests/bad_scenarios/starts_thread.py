"""Starts a non-daemon thread that never ends."""
import threading
import time

import torch

def _poll():
    while True:
        time.sleep(0.05)

threading.Thread(target=_poll, name="poller").start()
w = torch.tensor([0.0], requires_grad=True)
def loss():
    return ((w - 3.0) ** 2).sum()
lr = 0.25
