"""A long stream from a generator: it counts every batch it makes, and draws from torch's and numpy's RNGs."""
import numpy as np
import torch

class Stream:
    """Re-iterable: each epoch is a fresh generator of 5000 batches; ``made`` counts them."""

    made = 0

    def __iter__(self):
        for _ in range(5000):
            self.made += 1
            x = torch.randn(8, 3)
            noise = torch.from_numpy(np.random.standard_normal((8, 1)).astype("float32"))
            yield x, x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.1 * noise


model = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Dropout(0.2), torch.nn.Linear(8, 1))
loss_fn = torch.nn.MSELoss()
data = Stream()
optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
