"""A complex scalar loss over real weights."""
import torch

w = torch.tensor([1.0, -2.0], requires_grad=True)
phase = torch.tensor([1j, 1.0 + 0j])
lr = 0.1


def loss():
    return (w * phase).sum() ** 2
