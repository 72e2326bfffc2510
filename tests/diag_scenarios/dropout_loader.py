"""Dropout and a shuffled DataLoader: randomness in the data order and in the forward

A small two-layer network with dropout, trained on shuffled mini-batches with
SGD (momentum 0.9, weight decay 0.01). The gradient checker must evaluate the
loss with the same dropout mask every time, and on the batch the next step
takes; nothing it does may change which batch or which mask the session gets.
"""
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(3)
inputs = torch.randn(12, 3)
targets = inputs @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.1 * torch.randn(12, 1)

model = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Dropout(0.25), nn.Linear(8, 1))
loss_fn = nn.MSELoss()
data = DataLoader(TensorDataset(inputs, targets), batch_size=4, shuffle=True)
optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=0.01)
steps = 9
