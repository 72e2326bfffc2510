"""An MNIST-style CNN: two convolutions, ReLU and max-pool, on random 14x14 images

Max-pool and ReLU give the loss corners (kinks); the gradient checker must not
call a correct convolution's gradient a mismatch because a finite difference
stepped across one.
"""
import torch
from torch import nn

torch.manual_seed(4)
images = torch.randn(16, 1, 14, 14)
labels = torch.randint(0, 10, (16,))
model = nn.Sequential(
    nn.Conv2d(1, 6, 3), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(6, 8, 3), nn.ReLU(), nn.MaxPool2d(2),
    nn.Flatten(), nn.Linear(8 * 2 * 2, 10),
)
loss_fn = nn.CrossEntropyLoss()
data = (images, labels)
optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
