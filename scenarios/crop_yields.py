"""Crop yields: linear regression on mini-batches from a DataLoader

Follows the tutorial notebook of seed 002 ("Gradient descent and linear
regression with PyTorch", the built-ins part). Predict the yields of apples
and oranges from temperature, rainfall and humidity in 15 regions (read from
data/crop_yields.csv): nn.Linear(3, 2) gives two outputs from three inputs,
the loss is F.mse_loss, and SGD uses learning rate 1e-5 (the inputs are
around 40..140, so a bigger rate would overshoot).

The data come from a TensorDataset in a DataLoader with batch_size=5 and
shuffle=True: each step sees 5 of the 15 rows, so one epoch is 3 steps, and
the rows are dealt out in a new order every epoch.

What to watch: the loss is per batch, so it zigzags: some batches are easier
than others, and each reshuffle changes which rows go together. The trend is
still down: with the seed below, the mean squared error over all 15 rows
starts at 12439.9, is 4041.2 after the first epoch and 14.8 after 100
epochs (300 steps). Watch the weights: the temperature column (first) ends
negative for both fruits, rainfall and humidity positive: in this table,
hotter regions yield less and wetter ones more.

The notebook does not seed its model or its shuffling, so its printed
weights and losses cannot be reproduced. This scenario seeds 2017 before
building the model, so --seed does not change the start; the shuffling
draws from torch's global generator as the batches are taken.
"""
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(2017)

# Columns: temp, rainfall, humidity (inputs), apples, oranges (targets).
path = Path(__file__).resolve().parent.parent / "data" / "crop_yields.csv"
table = np.loadtxt(path, delimiter=",", skiprows=1, dtype="float32")
inputs = torch.from_numpy(table[:, :3])  # (15, 3)
targets = torch.from_numpy(table[:, 3:])  # (15, 2)

# A TensorDataset hands out (input row, target row) pairs; the DataLoader
# groups them into shuffled batches of 5.
train_ds = TensorDataset(inputs, targets)
batch_size = 5
train_dl = DataLoader(train_ds, batch_size, shuffle=True)

# weight (2, 3): one row per fruit, one column per input; bias (2,).
model = nn.Linear(3, 2)

# What gdtui reads (besides model):
loss_fn = F.mse_loss
data = train_dl  # one step per batch, re-shuffled every epoch
optimizer = torch.optim.SGD(model.parameters(), lr=1e-5)
steps = 300  # 100 epochs of 3 batches
