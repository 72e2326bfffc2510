"""A GradScaler on CPU whose second step has an Inf gradient: the scaler skips that update and lowers its scale."""
import torch

torch.manual_seed(0)
model = torch.nn.Linear(4, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
x, y = torch.randn(8, 4), torch.randn(8, 1)
for step in range(1, 5):
    optimizer.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
    loss = torch.nn.functional.mse_loss(out.float(), y)
    scaler.scale(loss).backward()
    if step == 2:
        model.weight.grad[0, 0] = float("inf")
    scaler.step(optimizer)
    scaler.update()
    print(repr(loss.item()), scaler.get_scale())
print(repr(sum(p.sum().item() for p in model.parameters())))
