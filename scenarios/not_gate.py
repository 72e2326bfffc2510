"""NOT gate: one sigmoid neuron learns to flip 0 and 1

Follows the tutorial notebook of seed 003 ("Gradient descent with PyTorch",
the NOT-gate neuron). Inputs x = [[0], [1]], targets y = [1, 0]; one neuron
with a weight w = [[3.]] and a bias b = [[1.]], both raw tensors, computes
a = sigmoid(w @ x.T + b), a row of two activations. The loss is the mean
squared error torch.mean(torch.square(a - y)); SGD with learning rate 10.

What to watch: the start is bad in a particular way. With w = 3 and b = 1,
input 1 gives sigmoid(4) = 0.98 where the target is 0, but the sigmoid is
nearly flat there, so the gradients are tiny (w 0.0173, b -0.0355) and even
lr = 10 moves the loss slowly: 0.518, 0.506, 0.501, 0.498, 0.496. Meanwhile b
grows (input 0 wants a larger output) while w shrinks: the two gradients
pull in opposite directions, and a NOT gate needs w to become negative. Run
on to see it get there: by step 50, w is -5.44, b 2.61 and the loss 0.004.

Reference numbers (no randomness), losses of steps 1..5 (the notebook's
iterations 0..4): 0.5183403, 0.50608575, 0.50116986, 0.49811363, 0.4955888.
w, b after step 1: 2.8265495, 1.3553205; after 2: 2.6806374, 1.5435127;
after 3: 2.5405035, 1.6586863; after 4: 2.3969853, 1.7300583.
After step 5: w 2.2432415, b 1.768915 in optim mode (the default, as in the
notebook), or w 2.2432413, b 1.7689152 in manual mode. The notebook used
the optimizer, but torch 2.13's SGD rounds the update differently in the
last float32 digit (b 1.3553203 after step 1); manual mode,
w -= 10 * w.grad, reproduces the notebook's printed digits exactly.
"""
import torch

# The truth table of NOT: input 0 -> 1, input 1 -> 0.
x = torch.tensor([[0], [1]], dtype=torch.float32)  # (2, 1): one input per row
y = torch.tensor([1, 0], dtype=torch.float32)  # (2,)

w = torch.tensor([[3]], requires_grad=True, dtype=torch.float32)
b = torch.tensor([[1]], requires_grad=True, dtype=torch.float32)


def neuron(x):
    return torch.sigmoid(w @ x.T + b)  # (1, 1) @ (1, 2) + (1, 1) -> (1, 2)


def mean_squared(a, y):
    return torch.mean(torch.square(a - y))


# What gdtui reads:
model = neuron
loss_fn = mean_squared
data = (x, y)
optimizer = torch.optim.SGD([w, b], lr=10)
steps = 5
