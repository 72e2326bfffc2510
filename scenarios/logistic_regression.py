"""Logistic regression: separate two classes of points with a line

Follows the tutorial notebook of seed 000, section 2.3 ("Logistic
regression"), with the loss written by hand. 100 points with two features
(each divided by its column's maximum, so both lie in 0..1) and a 0/1 label.
The model is sigmoid(x @ w + b), a probability of class 1; the loss is the
binary cross-entropy, written out with clamp so that log never sees 0:
  -(y * log(p) + (1 - y) * log(1 - p)).mean()
SGD with learning rate 1.0, 1000 steps.

What to watch: the loss starts near log(2) = 0.69 (a coin toss) and falls
quickly for 200 steps, then slowly. The "accuracy" metric (share of points
with (p >= 0.5) == label, measured on each step's prediction, before the
update) reaches 0.92 early and then even dips to 0.90 while the loss keeps
falling: the loss rewards confident, well-separated probabilities, not just
the count of points on the right side of the line.

How the notebook's numbers are reproduced: after torch.manual_seed(2017) the
notebook draws w twice. The FIRST draw (kept here as w_first, with
b_first = 0: the untrained line the notebook plots and scores first) gives
loss 0.6412, and one hand-made update with learning rate 0.1 gives 0.6407.
The notebook then trains a SECOND draw, w = nn.Parameter(randn(2, 1)), with
b = 0; that is what gdtui trains (its first loss is 0.6694).

Reference numbers (seed 2017, set below, so --seed does not change them):
  first look (w_first): loss 0.6412
  step   200: loss 0.39730, accuracy 0.92
  step   400: loss 0.32458, accuracy 0.92
  step   600: loss 0.29065, accuracy 0.91
  step   800: loss 0.27077, accuracy 0.91
  step  1000: loss 0.25765, accuracy 0.90
"""
from pathlib import Path

import numpy as np
import torch
from torch import nn

torch.manual_seed(2017)

# Each line of the file is "feature0,feature1,label".
path = Path(__file__).resolve().parent.parent / "data" / "logistic_data.txt"
rows = np.loadtxt(path, delimiter=",")
# Standardise: divide each feature by its largest value.
rows[:, 0] /= rows[:, 0].max()
rows[:, 1] /= rows[:, 1].max()

np_data = rows.astype("float32")
x_data = torch.from_numpy(np_data[:, 0:2])  # (100, 2)
y_data = torch.from_numpy(np_data[:, -1]).unsqueeze(1)  # (100, 1)


def binary_loss(y_pred, y):
    logits = (y * y_pred.clamp(1e-12).log()
              + (1 - y) * (1 - y_pred).clamp(1e-12).log()).mean()
    return -logits


# A first look with random, untrained parameters (not trained by gdtui).
w_first = torch.randn(2, 1)
b_first = torch.zeros(1)
first_look_loss = binary_loss(torch.sigmoid(x_data @ w_first + b_first), y_data).item()  # 0.6412

# The parameters that are trained: a fresh random w, and b = 0.
w = nn.Parameter(torch.randn(2, 1))
b = nn.Parameter(torch.zeros(1))


def logistic_regression(x):
    return torch.sigmoid(torch.mm(x, w) + b)  # probability of class 1


def accuracy(y_pred, y):
    mask = (y_pred >= 0.5).float()  # predicted class
    return (mask == y).float().mean().item()


# What gdtui reads:
model = logistic_regression
loss_fn = binary_loss
data = (x_data, y_data)
optimizer = torch.optim.SGD([w, b], lr=1.0)
metrics = {"accuracy": accuracy}
steps = 1000
