"""A trained tensor on the meta device."""
import torch

w = torch.zeros(3, device="meta", requires_grad=True)
lr = 0.1


def loss():
    return (w ** 2).sum()
