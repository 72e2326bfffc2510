"""Its dataset raises a BaseException that is not an Exception on the second batch

Such an exception (like KeyboardInterrupt or SystemExit) passes an `except Exception`.
"""
import torch
from torch.utils.data import DataLoader, Dataset


class Halt(BaseException):
    pass


class Points(Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        if i == 1:
            raise Halt("the dataset stops at item 1")
        return torch.tensor([float(i)]), torch.tensor([2.0 * i])


w = torch.zeros(1, requires_grad=True)


def model(x):
    return w * x


loss_fn = torch.nn.MSELoss()
data = DataLoader(Points(), batch_size=1)
optimizer = torch.optim.SGD([w], lr=0.1)
