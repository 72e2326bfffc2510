"""A scenario's lr scheduler: gdtui leaves the param groups' lr alone unless the user changes it,
steps ``scheduler`` after each update (or epoch), and rewinds it exactly.

References: the figures of issue 12 case 5 (w = 1.6, 1.76, 1.808, 1.8272 for StepLR with
gamma 0.5 from lr 0.4 on (w - 2)²), and plain PyTorch loops written out here that call
``scheduler.step()`` the same way.
"""

from __future__ import annotations

import runpy

import pytest
import torch

from gdtui.cli import main
from gdtui.engine import Session
from gdtui.engine.errors import ScenarioError
from tests.plain_loop import read_trace

HALVING = '''
import torch
w = torch.tensor(0.0, requires_grad=True)
def loss():
    return (w - 2) ** 2
optimizer = torch.optim.SGD([w], lr=0.4)
{scheduler}
'''

OWN_HOOK = HALVING.format(scheduler='''
halve = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
optimizer.register_step_post_hook(lambda opt, args, kwargs: halve.step())  # the scenario steps it itself
''')
GIVEN = HALVING.format(scheduler="scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)")
HOOK_AND_GIVEN = OWN_HOOK.replace("halve", "scheduler")

EPOCHS = '''
import torch
from torch.utils.data import DataLoader, TensorDataset
x = torch.linspace(-1, 1, 12).unsqueeze(1)
y = 3 * x + 1
data = DataLoader(TensorDataset(x, y), batch_size=4, shuffle=True, generator=torch.Generator().manual_seed(7))
model = torch.nn.Linear(1, 1)
loss_fn = torch.nn.MSELoss()
optimizer = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.5)
scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
scheduler_interval = "epoch"
'''


def write(tmp_path, source: str, name: str = "scenario.py"):
    path = tmp_path / name
    path.write_text(source)
    return path


def ws(records) -> list[float]:
    return [r.params["w"].values for r in records]


def test_a_scheduler_the_scenario_steps_itself_is_not_overridden(tmp_path):
    """Issue 12 case 5: StepLR(gamma 0.5) stepped by the scenario from a hook gives the plain
    loop's w = 1.6, 1.76, 1.808, 1.8272, and each record says the lr that step used."""
    path = write(tmp_path, OWN_HOOK)
    session = Session(path)
    records = [session.step() for _ in range(4)]
    assert ws(records) == pytest.approx([1.6, 1.76, 1.808, 1.8272], rel=1e-6)
    assert [r.lr for r in records] == pytest.approx([0.4, 0.2, 0.1, 0.05])
    trace = tmp_path / "t.jsonl"
    assert main([str(path), "--headless", "--steps", "4", "--trace", str(trace), "--quiet"]) == 0
    steps = [line for line in read_trace(trace) if line["event"] == "step"]
    assert [s["lr"] for s in steps] == pytest.approx([0.4, 0.2, 0.1, 0.05])


def plain_halving(steps: int, mode: str) -> list[float]:
    """The plain loop: update with the optimizer's lr, then scheduler.step()."""
    w = torch.tensor(0.0, requires_grad=True)
    opt = torch.optim.SGD([w], lr=0.4)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    out = []
    for _ in range(steps):
        ((w - 2) ** 2).backward()
        if mode == "optim":
            opt.step()
        else:
            with torch.no_grad():
                w -= opt.param_groups[0]["lr"] * w.grad
        opt.zero_grad()
        sched.step()
        out.append(w.item())
    return out


@pytest.mark.filterwarnings("ignore:Detected call of")
@pytest.mark.parametrize("mode", ["optim", "manual"])
def test_scheduler_is_stepped_after_each_update_exactly_like_a_plain_loop_with_rewind(mode, tmp_path):
    """Issue 12 case 5: `scheduler` is stepped after each update, in both modes; a rewind puts it back."""
    session = Session(write(tmp_path, GIVEN), mode=mode)
    first = [session.step() for _ in range(6)]
    assert ws(first) == plain_halving(6, mode)
    assert session.rewind(4) == 4
    assert session.scenario.scheduler.last_epoch == 2
    again = [session.step() for _ in range(4)]
    assert again == first[2:]


def test_a_scheduler_stepped_from_a_hook_is_not_stepped_twice(tmp_path):
    """Issue 12 case 5: the scenario steps `scheduler` itself (its last_epoch moved): gdtui does not."""
    session = Session(write(tmp_path, HOOK_AND_GIVEN))
    assert ws([session.step() for _ in range(4)]) == plain_halving(4, "optim")
    assert session.scenario.scheduler.last_epoch == 4


def plain_epochs(path, epochs: int) -> list[list[float]]:
    torch.manual_seed(0)  # as gdtui seeds a scenario (seed 0)
    ns = runpy.run_path(str(path))
    model, opt, sched = ns["model"], ns["optimizer"], ns["scheduler"]
    out = []
    for _ in range(epochs):
        for x, y in ns["data"]:
            ns["loss_fn"](model(x), y).backward()
            opt.step()
            opt.zero_grad()
            out.append([p.tolist() for p in model.parameters()])
        sched.step()
    return out


def test_an_epoch_scheduler_on_a_dataloader_follows_a_plain_loop_with_rewind(tmp_path):
    """Issue 12 case 5: scheduler_interval = "epoch" steps it after the last batch of each epoch
    (3 batches an epoch), exact against a plain loop, also across a rewind over an epoch's end."""
    path = write(tmp_path, EPOCHS)
    session = Session(path)
    first = [session.step() for _ in range(9)]
    got = [[v.values for v in r.params.values()] for r in first]
    assert [r.lr for r in first] == [0.5] * 3 + [0.25] * 3 + [0.125] * 3
    assert session.rewind(5) == 5
    again = [session.step() for _ in range(5)]
    assert again == first[4:]
    assert got == plain_epochs(path, 3)


def test_a_learning_rate_the_user_sets_is_written_once_then_the_scheduler_goes_on(tmp_path):
    """Issue 12 case 5: + writes the doubled lr before the next update; StepLR halves it from there."""
    session = Session(write(tmp_path, GIVEN))
    session.step()  # lr 0.4, then the scheduler makes it 0.2
    session.panel.scale_lr(2)
    assert session.lr == 0.4
    assert [session.step().lr for _ in range(3)] == pytest.approx([0.4, 0.2, 0.1])


@pytest.mark.parametrize(("line", "message"), [
    ('scheduler_interval = "week"', "scenario.py:8: scheduler_interval is 'week'; use 'step'"),
    ("scheduler = 3", "scenario.py:8: scheduler is an int; make it a torch.optim.lr_scheduler"),
])
def test_a_bad_scheduler_is_one_line(line, message, tmp_path):
    """Issue 12 case 5: a bad `scheduler` or `scheduler_interval` is refused at load, in one line."""
    source = GIVEN + line + "\n"
    with pytest.raises(ScenarioError) as info:
        Session(write(tmp_path, source))
    assert message in str(info.value) and "\n" not in str(info.value)
