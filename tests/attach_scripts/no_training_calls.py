"""Neither a training loop nor a scenario, though it calls .step() and .backward(): on things gdtui does not count."""
import torch


class Walker:
    def step(self):
        return 1


x = torch.ones(3, requires_grad=True)
(x * 2).sum().detach().requires_grad_().backward()
print(Walker().step())
