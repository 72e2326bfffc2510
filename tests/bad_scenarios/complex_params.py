"""Complex trained tensors, with a real loss |z - t|^2."""
import torch

z = torch.tensor([1.0 + 2.0j, -0.5j], requires_grad=True)
target = torch.tensor([0.5 - 1.0j, 2.0 + 0.0j])
lr = 0.1


def loss():
    return ((z - target).abs() ** 2).sum()
