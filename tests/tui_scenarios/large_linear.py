"""A 100x100 weight: more elements than a step's record keeps (4096), so it keeps only statistics"""
import torch

torch.manual_seed(0)
inputs = torch.randn(16, 100)
targets = torch.randn(16, 100)
model = torch.nn.Linear(100, 100)
loss_fn = torch.nn.MSELoss()
data = (inputs, targets)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
