"""A ResNet-style basic block: conv-BN-ReLU-conv-BN plus the skip, then a linear head

BatchNorm in training mode updates its running statistics at every forward:
the gradient check must leave them (and num_batches_tracked) as they were.
"""
import torch
from torch import nn


class BasicBlock(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + x)


torch.manual_seed(5)
images = torch.randn(8, 4, 6, 6)
labels = torch.randint(0, 3, (8,))
model = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), BasicBlock(4), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
loss_fn = nn.CrossEntropyLoss()
data = (images, labels)
optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
