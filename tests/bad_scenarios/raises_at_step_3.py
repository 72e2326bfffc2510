"""A model that hard-codes the batch size: the third batch is short, so step 3 raises."""
import torch
from torch.utils.data import DataLoader, TensorDataset

w = torch.zeros(1, requires_grad=True)


def model(x):
    return x.view(4, 1) * w  # 10 rows in batches of 4: the third batch has 2 rows


loss_fn = lambda pred, y: ((pred - y) ** 2).mean()
data = DataLoader(TensorDataset(torch.ones(10, 1), torch.ones(10, 1)), batch_size=4)
optimizer = torch.optim.SGD([w], lr=0.1)
