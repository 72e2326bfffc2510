"""Fit y = 2x with nn.Linear(1, 1)

Follows the tutorial notebook of seed 001, part 4 ("PyTorch model"): the
prediction now comes from nn.Linear(1, 1), which has a weight AND a bias,
the loss is nn.MSELoss and the update is SGD with learning rate 0.01. The
data are the four points of fit_2x, reshaped to (n_samples, n_features) =
(4, 1), as nn.Linear expects.

What to watch: the bias. y = 2x needs b = 0, but b is free now, and the
gradient pulls w and b together: at first both grow, then w keeps climbing
towards 2 while b slowly has to come back down. The loss falls fast for 10
steps, then slowly: raising w and lowering b trade off against each other.

The notebook does not seed its nn.Linear, so its numbers cannot be
reproduced. This scenario does not seed either: gdtui's --seed (default 0)
sets the start. With --seed 0: weight -0.0075, bias 0.5364 at the start;
step 1 loss 25.1283; after step 10, w 1.376 and b 0.971; step 30 loss
0.1682 (w 1.653, b 0.996); the loss is still above 0.001 after 200 steps.
Try other seeds: every start ends near w = 2, b = 0; how fast depends on
where it starts (--seed 2017 is below 0.002 by step 30).
"""
import torch
import torch.nn as nn

# Training data must have the shape (n_samples, n_features).
X = torch.tensor([[1], [2], [3], [4]], dtype=torch.float32)  # 4 samples of 1 feature
y = torch.tensor([[2], [4], [6], [8]], dtype=torch.float32)  # 4 outputs of size 1

n_samples, n_features = X.shape
input_size = n_features
output_size = y.shape[1]

# The model holds its own parameters: weight (1, 1) and bias (1,).
model = nn.Linear(input_size, output_size)

# What gdtui reads (besides model):
loss_fn = nn.MSELoss()
data = (X, y)
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
steps = 30
