"""A DCGAN-style forward that makes float tensors itself: torch.full(..., dtype=torch.float) and torch.ones

The gradient check runs in float64; tensors made inside forward must be made
in float64 too, or a convolution refuses to mix them with its float64 weight.
"""
import torch
from torch import nn


class Discriminator(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.side = nn.Conv2d(1, 4, 3)
        self.head = nn.Linear(4 * 4 * 4, 1)

    def forward(self, x):
        fill = torch.full((x.shape[0], 1, 6, 6), 0.5, dtype=torch.float)
        scale = torch.ones(x.shape[0], 1, 6, 6)
        h = torch.relu(self.conv(x) + self.side(fill * scale))
        return torch.sigmoid(self.head(h.flatten(1)))


torch.manual_seed(7)
images = torch.randn(8, 1, 6, 6)
labels = torch.rand(8, 1)
model = Discriminator()
loss_fn = nn.BCELoss()
data = (images, labels)
optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
