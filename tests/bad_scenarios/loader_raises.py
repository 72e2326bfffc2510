"""A dataset whose sixth item cannot be read: the DataLoader raises mid-epoch."""
import torch
from torch.utils.data import DataLoader, Dataset


class Flaky(Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, i):
        if i == 5:
            raise OSError("row 5 is unreadable")
        return torch.ones(1), torch.ones(1)


w = torch.zeros(1, requires_grad=True)
model = lambda x: x * w
loss_fn = lambda pred, y: ((pred - y) ** 2).mean()
data = DataLoader(Flaky(), batch_size=2)
optimizer = torch.optim.SGD([w], lr=0.1)
