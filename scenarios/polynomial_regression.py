"""Polynomial regression: fit y = 0.9 + 0.5x + 3x^2 + 2.4x^3

Follows the tutorial notebook of seed 000, section 2.2 ("Polynomial linear
regression"). The model is still linear in its parameters: each input row is
the three features [x, x^2, x^3] for x = -3, -2.9, ..., 3 (61 rows), and the
prediction is x @ w + b with w of shape (3, 1) and b of shape (1,). The loss is
the mean squared error; the update is w -= 0.001 * w.grad by hand.

What to watch: the x^3 feature reaches 27, so its weight gets by far the
biggest gradient (-215.9 on step 1) and moves first: it overshoots its target
2.4 (2.62 by step 21) and then comes back slowly. The loss falls from 413.98
to about 1.13 in 101 steps. By then the x^2 weight is 2.92 (target 3), but
the x weight, whose feature is the smallest, has only moved from -1.13 to
-0.85 (target 0.5), and b has crept to 0.75 (target 0.9): the last part of
the fit is slow.

How the notebook's numbers are reproduced: the notebook seeds 2017 once, at
the top, and its linear regression (section 2.1) first draws randn(1) for its
own w; the polynomial w is the SECOND draw after the seed, randn(3, 1). This
scenario makes that first draw too, then draws w. The gradients must also be
zeroed every step (gdtui does): with the first draw instead, the first loss
is 1504.025; without zeroing, the loss turns back up after a few steps.

Reference numbers (seed 2017, set below, so --seed does not change them):
  step 1: loss 413.9843, grad w [-34.1391, -146.6133, -215.9148],
          grad b -27.0838
  the notebook then runs 100 epochs and prints every 20th; its epoch k is
  step k + 1 here:
  step 21: 73.67840  step 41: 17.97097  step 61: 4.94101
  step 81: 1.87171   step 101: 1.12812
(torch 2.13 prints 73.67841 at step 21: the float32 value is 73.678406.)
"""
import numpy as np
import torch

# The target function, as numbers: y = b_target + x*w0 + x^2*w1 + x^3*w2.
w_target = np.array([0.5, 3, 2.4])
b_target = np.array([0.9])

x_sample = np.arange(-3, 3.1, 0.1)  # 61 points from -3 to 3
y_sample = (b_target[0] + w_target[0] * x_sample
            + w_target[1] * x_sample ** 2 + w_target[2] * x_sample ** 3)

# Each row of x_train is [x, x^2, x^3]: shape (61, 3). y_train: (61, 1).
x_train = np.stack([x_sample ** i for i in range(1, 4)], axis=1)
x_train = torch.from_numpy(x_train).float()
y_train = torch.from_numpy(y_sample).float().unsqueeze(1)

torch.manual_seed(2017)
torch.randn(1)  # the draw the notebook's section 2.1 made for its own w
w = torch.randn(3, 1, requires_grad=True)  # one weight per feature
b = torch.zeros(1, requires_grad=True)


def multi_linear(x):
    return torch.mm(x, w) + b  # (61, 3) @ (3, 1) + (1,) -> (61, 1)


def get_loss(y_, y):
    return torch.mean((y_ - y) ** 2)


# What gdtui reads:
model = multi_linear
loss_fn = get_loss
data = (x_train, y_train)
lr = 0.001
optimizer = torch.optim.SGD([w, b], lr=lr)
mode = "manual"  # the notebook updates w.data and b.data by hand
steps = 101  # one single update, then the notebook's 100 epochs
