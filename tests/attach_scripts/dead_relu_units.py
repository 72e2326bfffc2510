"""A 2-8-1 network with an nn.ReLU module whose hidden unit 0 starts dead (bias -100); it prints,
after each step, its loss and the hidden units that output 0 for every sample of the batch."""
import torch
import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden, self.act, self.out = nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 1)

    def forward(self, x):
        self.activations = self.act(self.hidden(x))
        return self.out(self.activations)


torch.manual_seed(0)
model = Net()
with torch.no_grad():
    model.hidden.bias[0] = -100.0
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
x, y = torch.rand(16, 2), torch.rand(16, 1)
for step in range(3):
    optimizer.zero_grad()
    loss = nn.functional.mse_loss(model(x), y)
    loss.backward()
    optimizer.step()
    print(repr(loss.item()), (model.activations.amax(0) == 0).nonzero().flatten().tolist())
print(repr(sum(p.sum().item() for p in model.parameters())))
