"""Fine-tuning a head on a frozen backbone: the backbone's parameters have requires_grad False,
the optimizer holds the head's, with two param groups of different lrs."""
import torch
import torch.nn as nn

torch.manual_seed(3)
backbone = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU())
for p in backbone.parameters():
    p.requires_grad_(False)
model = nn.Sequential(backbone, nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 2))
optimizer = torch.optim.SGD([{"params": model[1].parameters(), "lr": 0.05},
                             {"params": model[3].parameters(), "lr": 0.1}], momentum=0.9)
x, y = torch.randn(32, 8), torch.randint(0, 2, (32,))
for step in range(4):
    optimizer.zero_grad()
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
    print(repr(loss.item()))
print(repr(sum(p.sum().item() for p in model.parameters())))
