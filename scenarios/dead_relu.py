"""Dead ReLU: one big step kills a 2-3-1 network

Follows the tutorial notebook of seed 003 ("Gradient descent with PyTorch",
the last network): Linear(2, 3), ReLU, Linear(3, 1), ReLU, trained on one
sample x = [[3., 5.]] with target y = [[10.]], loss
torch.mean(torch.square(y_hat - y)), SGD with learning rate 0.1.

The story (seed 5, set below, so --seed does not change it; it retells the
notebook's own run, whose unseeded start cannot be reproduced):
* At the start, hidden units 0 and 2 of linear1 are already dead: their
  pre-activations are -1.717 and -1.588, so ReLU outputs 0 and passes back
  a zero gradient. Only unit 1 is alive (pre-activation 4.327), and the
  output is 0.038: step 1's loss is 99.2399.
* Step 1's update overshoots: linear2's weight for unit 1 gets the
  gradient -86.2, so learning rate 0.1 moves it by 8.6 (to 8.745), while
  unit 1's own weights grow too. Its pre-activation jumps to 12.897, the
  output to 114.28, and step 2's loss explodes to 10874.8.
* Step 2's gradients are in the thousands (linear1.weight row 1 gets
  [5471.6, 9119.3]), and its update throws that row to [-545.85, -910.25]
  and its bias to -181.80: hidden unit 1 of linear1 dies at step 2 (its
  pre-activation becomes -6370.6). The output bias also goes negative
  (-19.358), so the output ReLU is dead too.
* From step 3 on, the output is 0, the loss is exactly 100.0 = y^2, and
  every gradient is exactly zero: nothing will ever change again.

What to watch: the hidden activations and the gradients. A unit whose
pre-activation is negative for every input gets no gradient, so no
optimizer step can revive it. A smaller learning rate, 0.01, keeps unit 1
alive: the loss wobbles (99.24, 26.91, 9.94, 25.12, ...) but falls, to 2.61
after 200 steps.
"""
import torch

torch.manual_seed(5)


class ComplexNetwork(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear1 = torch.nn.Linear(in_features=2, out_features=3)
        self.linear2 = torch.nn.Linear(in_features=3, out_features=1)

    def forward(self, x):
        x = torch.relu(self.linear1(x))  # 3 hidden units
        x = torch.relu(self.linear2(x))  # 1 output unit
        return x


def mean_squared(y_hat, y):
    return torch.mean(torch.square(y_hat - y))


model = ComplexNetwork()
x = torch.tensor([[3, 5]], dtype=torch.float32)
y = torch.tensor([[10]], dtype=torch.float32)

# What gdtui reads (besides model):
loss_fn = mean_squared
data = (x, y)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
steps = 5
