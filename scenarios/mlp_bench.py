"""MLP benchmark: a 2.1M-parameter ReLU network, Adam, one full batch of synthetic data

What it measures: what gdtui adds to a training step of a model you would
actually debug on a laptop. The network maps 512 features to 10 classes
through hidden layers of 1024, 1024 and 512 units (2,104,842 parameters, 8
tensors); the batch is 64 samples, so one step of the plain loop takes a few
milliseconds on a CPU. Adam keeps two extra tensors per parameter, so the
engine's rewind snapshot (parameters, gradients and optimizer state) is about
25 MB a step.

Run it with `gdtui bench scenarios/mlp_bench.py`; `gdtui
scenarios/mlp_bench.py` steps through it like any other scenario.

The data and the starting weights are seeded here, so --seed does not
change them: inputs are standard normal, and each label is the class a fixed
random linear map scores highest, so the loss has something to learn (it
starts near 2.3, the loss of a uniform guess over 10 classes).
"""
import torch
from torch import nn

torch.manual_seed(0)

features, classes, batch = 512, 10, 64
x = torch.randn(batch, features)
teacher = torch.randn(features, classes)
y = (x @ teacher).argmax(dim=1)  # (64,) class indices

model = nn.Sequential(
    nn.Linear(features, 1024),
    nn.ReLU(),
    nn.Linear(1024, 1024),
    nn.ReLU(),
    nn.Linear(1024, 512),
    nn.ReLU(),
    nn.Linear(512, classes),
)

# What gdtui reads (besides model):
loss_fn = nn.CrossEntropyLoss()
data = (x, y)
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
steps = 50
