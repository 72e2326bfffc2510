"""Linear regression: fit a line y = w*x + b to 15 points

Follows the tutorial notebook of seed 000, section 2.1 ("Linear regression").
Two raw tensors are trained: w (one random number) and b (zero). Each step
predicts x*w + b, measures the mean squared error, lets autograd find the
gradients and moves w and b a little against them (learning rate 1e-2).

What to watch: the first step has a huge loss (153.3520) and a huge gradient
for w (161.0043; b's is 22.8730), so the first update throws w far across the
valley; the loss then falls to 3.1358 on step 2, 0.3551 on step 3, and after
that creeps down by about 0.0007 per step. w does almost all the work early;
b moves slowly because its gradient is much smaller.

Reference numbers (seed 2017, set below, so --seed does not change them):
  step 1: loss 153.3520, grad w 161.0043, grad b 22.8730
  the notebook then runs "epoch 0..9", which are steps 2..11 here:
  step 2: loss 3.13578   step 3: 0.355089   step 11 ("epoch 9"): 0.29728
The notebook's listing leaves out zeroing the gradients, but its printed
numbers come from a loop that zeroes them every step, as gdtui always does.
The notebook updates w and b by hand, so the scenario starts in "manual" mode;
"optim" mode (SGD) gives the same numbers to the printed precision.
"""
import numpy as np
import torch

# A fixed seed makes the random start of w the same on every run.
torch.manual_seed(2017)

# 15 (x, y) points, one feature each: shape (15, 1).
x_train = np.array([[3.3], [4.4], [5.5], [6.71], [6.93], [4.168],
                    [9.779], [6.182], [7.59], [2.167], [7.042],
                    [10.791], [5.313], [7.997], [3.1]], dtype=np.float32)
y_train = np.array([[1.7], [2.76], [2.09], [3.19], [1.694], [1.573],
                    [3.366], [2.596], [2.53], [1.221], [2.827],
                    [3.465], [1.65], [2.904], [1.3]], dtype=np.float32)
x_train = torch.from_numpy(x_train)
y_train = torch.from_numpy(y_train)

# The two parameters: w starts random, b starts at zero.
w = torch.randn(1, requires_grad=True)
b = torch.zeros(1, requires_grad=True)


def linear_model(x):
    return x * w + b  # the prediction y_


def get_loss(y_, y):
    return torch.mean((y_ - y) ** 2)  # mean squared error


# What gdtui reads:
model = linear_model
loss_fn = get_loss
data = (x_train, y_train)  # the full batch, every step
lr = 1e-2
optimizer = torch.optim.SGD([w, b], lr=lr)
mode = "manual"  # w -= lr * w.grad, as the notebook does by hand
steps = 11  # one single update, then the notebook's 10 epochs
