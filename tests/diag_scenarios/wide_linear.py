"""A 40x48 linear layer trained with Adam: too many entries to check or print one by one

The gradient checker samples a few entries of each large tensor; the
optimizer-state view summarises Adam's state for the weight instead of
listing its 1920 numbers.
"""
import torch

torch.manual_seed(1)
inputs = torch.randn(16, 48)
targets = torch.randn(16, 40)
model = torch.nn.Linear(48, 40)
loss_fn = torch.nn.MSELoss()
data = (inputs, targets)
optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
