"""Big benchmark: a 100.7M-parameter ReLU network, Adam, for a GPU

What it measures: whether gdtui stays out of the way of a model that keeps
a GPU busy. Seven layers of width 4096 (4096 inputs, six hidden layers of
4096 units, 10 classes: 100,728,842 parameters, 400 MB in float32, 1.6 GB
with the gradients and Adam's two moments) on one batch of 256 samples.
A rewind snapshot (parameters and Adam state) would be 1.2 GB, over the
default --history-mb 256, so
gdtui turns rewind off for it and says so; the engine's own cost is then
its per-step summaries and its copies of the parameters before the update.

Run it with `gdtui bench scenarios/big_bench.py --device cuda`. gdtui
executes this file under --device as the default device, so the layers and
the data below are created on the GPU directly, never on the host first.
On a CPU one step takes seconds, hence the small `steps`; the benchmark
itself picks its step count from the time a step takes.

The data and the starting weights are seeded here, so --seed does not
change them: standard normal inputs, each labelled with the class a fixed
random linear map scores highest.
"""
import torch
from torch import nn

torch.manual_seed(0)

width, depth, classes, batch = 4096, 6, 10, 256
x = torch.randn(batch, width)
teacher = torch.randn(width, classes)
y = (x @ teacher).argmax(dim=1)  # (256,) class indices

layers = []
for _ in range(depth):
    layers += [nn.Linear(width, width), nn.ReLU()]
model = nn.Sequential(*layers, nn.Linear(width, classes))

# What gdtui reads (besides model):
loss_fn = nn.CrossEntropyLoss()
data = (x, y)
optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
steps = 3  # on a CPU; pass --steps on a GPU
