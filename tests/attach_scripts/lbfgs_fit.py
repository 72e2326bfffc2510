"""A curve fit with LBFGS and a closure: forward and backward happen inside optimizer.step()."""
import torch

torch.manual_seed(0)
x = torch.linspace(-1, 1, 40).unsqueeze(1)
y = torch.sin(3 * x) + 0.05 * torch.randn_like(x)
model = torch.nn.Sequential(torch.nn.Linear(1, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
optimizer = torch.optim.LBFGS(model.parameters(), lr=0.5, max_iter=4)
loss_fn = torch.nn.MSELoss()


def closure():
    optimizer.zero_grad()
    loss = loss_fn(model(x), y)
    loss.backward()
    return loss


for step in range(5):
    loss = optimizer.step(closure)
    print(repr(loss.item()))
print(repr(sum(p.sum().item() for p in model.parameters())))
