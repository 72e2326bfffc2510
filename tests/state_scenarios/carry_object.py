"""A recurrent state kept in an object of the scenario's own class

gdtui snapshots tensors, modules and optimizers in the scenario's namespace,
but not the attributes of an arbitrary object: a rewind cannot restore
`carry.h`, and must say so.
"""

import torch
from torch import nn


class Carry:
    def __init__(self):
        self.h = torch.zeros(4, 3)


carry = Carry()
cell = nn.RNNCell(2, 3)
readout = nn.Linear(3, 1)
x = torch.randn(4, 2)
data = (x, x[:, :1] * 2)


def model(inputs):
    carry.h = cell(inputs, carry.h.detach())
    return readout(carry.h)


loss_fn = nn.MSELoss()
optimizer = torch.optim.SGD([*cell.parameters(), *readout.parameters()], lr=0.1)
