"""An MNIST-style CNN: two convolutions, ReLU and max-pool, on random 28x28 images

Max-pool and ReLU give the loss corners (kinks); the gradient checker must not
call a correct convolution's gradient a mismatch because a finite difference
stepped across one.
"""
import torch
from torch import nn

torch.manual_seed(4)
images = torch.randn(64, 1, 28, 28)
labels = torch.randint(0, 10, (64,))
model = nn.Sequential(
    nn.Conv2d(1, 8, 3), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(8, 16, 3), nn.ReLU(), nn.MaxPool2d(2),
    nn.Flatten(), nn.Linear(16 * 5 * 5, 10),
)
loss_fn = nn.CrossEntropyLoss()
data = (images, labels)
optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
