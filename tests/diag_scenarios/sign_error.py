"""Hand-written gradients with two kinds of mistakes

Fit y = X @ w + b (two features, three points) with the mean squared error.
grad_fn returns, for b, minus its true gradient (a sign error), and for w a
gradient whose first entry forgets the mean's 1/n while the second keeps it.
The checker must say "≈-1× autograd" for b and "differs from autograd" for w:
no single factor turns the true w gradient into that one.
"""
import torch

X = torch.tensor([[1.0, 0.5], [2.0, -1.0], [3.0, 2.0]])
Y = torch.tensor([1.0, 3.0, 2.0])
w = torch.tensor([0.25, -0.5], requires_grad=True)
b = torch.tensor(0.5, requires_grad=True)


def model(x):
    return x @ w + b


def loss_fn(pred, y):
    return ((pred - y) ** 2).mean()


def grad_fn():
    r = (X @ w.detach() + b.detach()) - Y  # residuals
    n = len(Y)
    true_w = (2 / n) * (X.T @ r)
    wrong_w = torch.stack([true_w[0] * n, true_w[1]])
    return {"w": wrong_w, "b": -(2 / n) * r.sum()}


data = (X, Y)
optimizer = torch.optim.SGD([w, b], lr=0.01)
