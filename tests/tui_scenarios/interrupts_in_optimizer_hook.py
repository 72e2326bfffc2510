"""An optimizer step hook raises KeyboardInterrupt on the second step: scenario code, not a Ctrl-C"""
import torch

w = torch.tensor(1.0, requires_grad=True)
x = torch.tensor([1.0, 2.0])
y = torch.tensor([2.0, 4.0])
calls = [0]


def model(x):
    return w * x


def stop_at_the_second_step(optimizer, args, kwargs):
    calls[0] += 1
    if calls[0] == 2:
        raise KeyboardInterrupt("the hook stops the second step")


loss_fn = torch.nn.MSELoss()
data = (x, y)
optimizer = torch.optim.SGD([w], lr=0.1)
optimizer.register_step_pre_hook(stop_at_the_second_step)
