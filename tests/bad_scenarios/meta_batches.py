"""Batches on the meta device, from a list of (inputs, targets)."""
import torch

model = torch.nn.Linear(2, 1)
loss_fn = torch.nn.MSELoss()
data = [(torch.randn(4, 2), torch.randn(4, 1)),
        (torch.randn(4, 2, device="meta"), torch.randn(4, 1, device="meta"))]
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
