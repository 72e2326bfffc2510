"""Minimise y = x^2 + 2x + 1 from x = 5

Follows the tutorial notebook of seed 003 ("Gradient descent with PyTorch",
first part). There is no model and no data here: the objective is a plain
function of one tensor x, and gradient descent walks x downhill. The
derivative is 2x + 2, so the minimum is at x = -1, where y = 0.

Each step: y = x^2 + 2x + 1, y.backward() puts dy/dx in x.grad, then
x -= alpha * x.grad with alpha = 0.1, and the gradient is zeroed. The
notebook does this by hand first, so the scenario starts in "manual" mode;
its torch.optim.SGD version is "optim" mode.

What to watch: every step shrinks the distance to -1 by the same factor,
1 - 2 * alpha = 0.8, so x approaches -1 geometrically and the loss by 0.64
per step; the gradient shrinks with it, and the steps get shorter on their
own. Try --lr 1.0: the factor becomes -1 and x jumps between 5 and -7
forever (loss stuck at 36); any lr above 1.0 diverges.

Reference numbers (no randomness):
  x after steps 1, 2, 3 = 3.8, 2.84, 2.072; y (the loss) = 36.0, 23.04,
  14.7456; step 8: x 0.006632924; step 50: x -0.99991435, y 0.0,
  gradient 0.00021409988403320312. In manual mode, all 50 rows of the
  notebook's table are reproduced digit for digit. In optim mode, SGD's
  update rounds differently in the last float32 digit from step 8 on
  (x 0.0066329264 instead of 0.006632924), a difference of 1e-9.
"""
import torch

# Start far from the minimum. requires_grad makes autograd track x.
x = torch.tensor(5, requires_grad=True, dtype=torch.float32)
alpha = 0.1  # the learning rate


def quadratic():
    return x ** 2 + 2 * x + 1


# What gdtui reads:
loss = quadratic  # no model or data: a zero-argument objective
lr = alpha
optimizer = torch.optim.SGD([x], lr=alpha)
mode = "manual"  # x -= alpha * x.grad; x.grad.zero_()
steps = 50
