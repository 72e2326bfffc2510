"""Fit y = 2x with one weight: hand-written gradient versus autograd

Follows the tutorial notebook of seed 001 ("Gradient descent", parts 1 to
3). Four points X = [1, 2, 3, 4], y = 2X, one weight w starting at 0, the
prediction w * x, the mean squared error, learning rate 0.01.

Two sources of the gradient, to switch between (grad source):
* autograd (the default): loss.backward(), as in parts 2 and 3.
* grad_fn: part 1's hand-written gradient, np.dot(2*x, y_pred - y).mean().
  The dot product is already a single number, so .mean() divides by nothing:
  the result is 2 * sum(x * (y_pred - y)), which is n = 4 times the true
  gradient of the MEAN squared error (2/n) * sum(x * (y_pred - y)). This
  mistake is kept on purpose: gdtui's gradient checker flags it (the ratio to
  autograd is exactly 4), and it makes the effective learning rate 0.04, so
  w gets to 2 in about 10 steps instead of 30.

Mode "manual" (w -= lr * w.grad, then w.grad.zero_()) as in part 2; part 3's
optimizer.step() and optimizer.zero_grad() give the same numbers.

Reference numbers (gradient zeroed every step, no seed needed):
  grad_fn:  w after steps 1, 2, 3 = 1.200, 1.680, 1.872;
            losses 30.00000000, 4.79999924, 0.76800019 (4.8000007 here)
  autograd: w after steps 1, 2, 3 = 0.300, 0.555, 0.772;
            losses 30.00000000, 21.67499924, 15.66018772, 11.31448650, ...
            step 24: loss 0.01699772, w 1.960
  The notebook stops "when loss < 0.001", but only runs 30 epochs: at step 30
  the loss is still 0.00241778 (w 1.985), so it never stops early. Run on:
  the loss first drops below 0.001 on step 33 (loss 0.00091188, w 1.991).
"""
import torch

# Training data: y = 2x, float32 and 1-D, four samples.
X = torch.tensor([1, 2, 3, 4], dtype=torch.float32)
y = torch.tensor([2, 4, 6, 8], dtype=torch.float32)

# The only parameter: a single number, starting at 0.
w = torch.tensor(0.0, dtype=torch.float32, requires_grad=True)


def forward(x):
    return w * x  # model prediction


def loss_fn(y_pred, y):
    # gdtui calls loss_fn(prediction, target); the notebook's loss(y, y_pred)
    # took them the other way round. Squared, the order does not matter.
    return ((y - y_pred) ** 2).mean()


def gradient(x, y, y_pred):
    # Part 1's hand-written gradient (see above: 4 times too large).
    return torch.dot(2 * x, y_pred - y).mean()


def grad_fn():
    # Called by gdtui with no arguments, at the current w.
    y_pred = w.detach() * X
    return {"w": gradient(X, y, y_pred)}


# What gdtui reads:
model = forward
data = (X, y)
lr = 0.01  # the notebook's learning_rate
optimizer = torch.optim.SGD([w], lr=lr)
mode = "manual"
steps = 30  # the notebook's total_epochs
