"""A loss that counts its calls in an object gdtui does not snapshot

The scale of the loss grows with the count kept in `box`, an object of the
scenario's own class: from the fourth call the loss overflows. Running steps
again from a checkpoint cannot give the first numbers, and gdtui must say why.
"""

import torch


class Box:
    def __init__(self):
        self.calls = 0


box = Box()
w = torch.ones(100, requires_grad=True)
lr = 0.01


def loss():
    box.calls += 1
    scale = 1e30 if box.calls >= 4 else 1.0
    return (w * scale).pow(2).sum()
