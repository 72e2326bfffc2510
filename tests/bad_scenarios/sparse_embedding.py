"""An embedding with sparse gradients, trained with plain SGD."""
import torch

torch.manual_seed(0)
embed = torch.nn.Embedding(10, 3, sparse=True)
model = torch.nn.Sequential(embed, torch.nn.Flatten(), torch.nn.Linear(6, 1))
loss_fn = torch.nn.MSELoss()
data = (torch.tensor([[1, 2], [3, 4], [5, 1]]), torch.tensor([[1.0], [0.0], [2.0]]))
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
