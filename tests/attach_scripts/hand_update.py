"""A linear fit updated by hand, as the seed notebooks do: w and b are leaf tensors, no optimizer;
the update is w -= lr * w.grad under no_grad, then the gradients are zeroed."""
import torch

torch.manual_seed(2017)
x_train = torch.tensor([[3.3], [4.4], [5.5], [6.71], [6.93], [4.168], [9.779], [6.182]])
y_train = torch.tensor([[1.7], [2.76], [2.09], [3.19], [1.694], [1.573], [3.366], [2.596]])
w = torch.randn(1, requires_grad=True)
b = torch.zeros(1, requires_grad=True)
lr = 1e-2


def linear_model(x):
    return x * w + b


for e in range(5):
    y_ = linear_model(x_train)
    loss = torch.mean((y_ - y_train) ** 2)
    loss.backward()
    with torch.no_grad():
        w -= lr * w.grad
        b -= lr * b.grad
    w.grad.zero_()
    b.grad.zero_()
    print(repr(loss.item()))
print(repr(w.sum().item() + b.sum().item()))
