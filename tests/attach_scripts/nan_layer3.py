"""A network whose layer 3 divides by a number that reaches zero at step 5: its output goes Inf/NaN there."""
import torch
import torch.nn as nn


class Divide(nn.Module):
    def __init__(self):
        super().__init__()
        self.by = 4.0

    def forward(self, x):
        return x / self.by


torch.manual_seed(5)
model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 8), Divide(), nn.Linear(8, 1))
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
x, y = torch.randn(16, 4), torch.randn(16, 1)
for step in range(1, 9):
    model[3].by = 5.0 - step  # 0 at step 5
    optimizer.zero_grad()
    loss = nn.functional.mse_loss(model(x), y)
    loss.backward()
    optimizer.step()
    print(repr(loss.item()))
