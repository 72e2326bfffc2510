"""Too large a learning rate drives w negative after step 1, so log(x * w) is NaN at step 2."""
import torch

w = torch.tensor([1.0], requires_grad=True)
x = torch.tensor([1.0, 2.0])
y = torch.tensor([-5.0, -5.0])
model = lambda x: torch.log(x * w)
loss_fn = lambda pred, y: ((pred - y) ** 2).mean()
data = (x, y)
optimizer = torch.optim.SGD([w], lr=1.0)
