"""Rewind with state the scenario keeps in its own module (issue 12, cases 29 and 30).

The scenarios in tests/state_scenarios/ are small ports of public training loops
that keep state beside the model and the optimizer gdtui is given: a word model's
module-level ``hidden``, a GAN's generator and its optimizer, BatchNorm modules
called from a function ``model``, and state in an object of the scenario's own
class, which gdtui cannot snapshot. Numbers are compared with PlainLoop
(tests/plain_loop.py): the scenario's own objects stepped by a plain PyTorch loop.
"""

from __future__ import annotations

import types
from pathlib import Path

import pytest
import torch
from torch import nn

from gdtui.cli import main
from gdtui.engine import Session
from tests.paths import STATE
from tests.plain_loop import PlainLoop

EXACT = ["word_lm", "gan", "batchnorm_function"]


def plain_run(path: Path, n: int) -> tuple[list[float], dict]:
    """The plain loop's first ``n`` losses, and the module's globals after them (runpy hands back a
    copy of them, taken at load: a function's own ``__globals__`` are the live ones)."""
    loop = PlainLoop(path)
    losses = [loop.step()["loss"] for _ in range(n)]
    model = loop.ns.get("model")
    return losses, model.__globals__ if isinstance(model, types.FunctionType) else loop.ns


def module_state(ns: dict) -> dict[str, torch.Tensor]:
    """Every parameter and buffer of the namespace's modules, and its module-level tensors."""
    out: dict[str, torch.Tensor] = {}
    for name, value in ns.items():
        if isinstance(value, nn.Module):
            out.update({f"{name}.{k}": v for k, v in value.state_dict().items()})
        elif isinstance(value, torch.Tensor):
            out[name] = value
        elif isinstance(value, tuple) and all(isinstance(v, torch.Tensor) for v in value):
            out.update({f"{name}[{i}]": v for i, v in enumerate(value)})
    return out


def assert_same_state(got: dict, want: dict) -> None:
    got, want = module_state(got), module_state(want)
    assert got.keys() == want.keys()
    for name in want:
        assert torch.equal(got[name], want[name]), name


@pytest.mark.parametrize("every", [1, 4], ids=["restore", "replay"])
@pytest.mark.parametrize("name", EXACT)
def test_namespace_state_rewinds_bit_for_bit(name, every):
    """Issue 12 case 29: a word model's module-level hidden, a GAN's generator and its Adam, and the
    BatchNorm buffers of a function model are snapshotted, so rewinding 3 of 6 steps and stepping
    again gives the plain loop's losses and leaves every module and tensor as the plain loop does.
    With a checkpoint every step the rewind restores one; every 4 steps it runs steps again."""
    path = STATE / f"{name}.py"
    want, plain_ns = plain_run(path, 6)
    session = Session(path, checkpoint_every=every)
    first = [session.step().loss for _ in range(6)]
    assert session.rewind(3) == 3
    again = [session.step().loss for _ in range(3)]
    assert again == first[3:]  # as rewind promises; and both are the plain loop's:
    assert first == want
    assert again == want[3:]
    assert_same_state(session.scenario.namespace, plain_ns)
    assert session.take_replay_note() is None  # nothing to say: the rewind and the steps were exact


@pytest.mark.parametrize("every", [1, 4], ids=["restore", "replay"])
def test_state_in_an_object_of_the_scenarios_class_is_named_at_the_rewind(every):
    """Issue 12 case 29: `carry.h` (an attribute of the scenario's own class) cannot be snapshotted.
    The rewind says at once that it may not be exact and names `carry`; the first step that runs
    again differently (in the replay, or the user's next step) says so with both losses, the first
    one being the plain loop's (with the load check's extra forward, which moved carry.h on)."""
    path = STATE / "carry_object.py"
    plain = PlainLoop(path)
    plain.ns["model"](plain.ns["data"][0])  # as gdtui's load check: carry.h moves on once (README)
    want = [plain.step()["loss"] for _ in range(6)]
    session = Session(path, checkpoint_every=every)
    assert [session.step().loss for _ in range(6)] == want
    session.rewind(3)
    note = session.take_replay_note()
    if every == 1:  # a checkpoint is restored, nothing runs again yet
        assert note.startswith("rewind may not be exact: gdtui does not snapshot carry (a Carry)")
        session.step()
        note = session.take_replay_note()
        differs = 4
    else:  # the steps from the checkpoint at 0 ran again
        differs = 1
    assert note.startswith(f"step {differs} ran again with loss ")
    assert f"not {want[differs - 1]!r} as the first time" in note
    assert "gdtui does not snapshot carry (a Carry)" in note
    assert session.take_replay_note() is None  # said once


def test_a_replay_that_changes_only_the_parameters_is_caught():
    """Issue 12 case 29: the parameters are compared too. After a rewind, the momentum buffer is
    changed behind gdtui's back: the step's loss is the same, its update is not."""
    path = STATE / "batchnorm_function.py"
    want, _ = plain_run(path, 3)
    session = Session(path, checkpoint_every=1)
    assert [session.step().loss for _ in range(3)] == want
    session.rewind(1)
    assert session.take_replay_note() is None
    for state in session.loop.optimizer.state.values():
        state["momentum_buffer"].add_(1.0)
    assert session.step().loss == want[2]
    note = session.take_replay_note()
    assert note.startswith("step 3 ran again to the same loss but other values in the trained tensors or buffers")


def test_headless_says_when_a_check_runs_a_step_again_differently(capsys):
    """Issue 12 case 29, headless: a quiet run checks large tensors for NaN/Inf at checkpoints and
    runs steps again to find the first bad one. `box` counts the loss's calls and gdtui cannot
    restore it, so step 1 runs again to inf, not to sum(w**2) = 100 with w = ones(100): one line
    on stderr says so and names `box`."""
    status = main([str(STATE / "counter_box.py"), "--headless", "--steps", "6", "--quiet"])
    err = capsys.readouterr().err
    assert status == 3
    assert "counter_box.py: step 1 ran again with loss inf, not 100.0 as the first time: gdtui does not snapshot box (a Box)" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("name", ["word_lm", "batchnorm_function"])
def test_the_load_check_leaves_the_namespace_as_the_file_made_it(name):
    """Issue 12 case 30: the load-time check's forward advanced a module-level `hidden` and the
    BatchNorm buffers of a function model (num_batches_tracked 1 before any step) and bumped a call
    counter. After loading, every module, tensor and number equals a fresh run of the file, and the
    steps give the plain loop's numbers."""
    path = STATE / f"{name}.py"
    _, fresh = plain_run(path, 0)
    session = Session(path)
    ns = session.scenario.namespace
    assert_same_state(ns, fresh)
    assert ns.get("calls") == fresh.get("calls")
    want, plain_ns = plain_run(path, 3)
    assert [session.step().loss for _ in range(3)] == want
    assert_same_state(ns, plain_ns)


def test_a_frozen_backbone_is_watched_not_copied():
    """Issue 12 case 29, its cost: snapshotting the namespace must not copy a frozen backbone (a
    512x512 float weight, 1 MiB) at every checkpoint; rewinding over it stays exact."""
    path = STATE / "frozen_backbone.py"
    want, _ = plain_run(path, 4)
    session = Session(path, checkpoint_every=2)
    first = [session.step().loss for _ in range(4)]
    assert session.loop.snapshot(grads_known_zero=True).nbytes < 512 * 512 * 4 // 4
    session.rewind(3)
    again = [session.step().loss for _ in range(3)]
    assert first == want and again == want[1:]
    assert session.take_replay_note() is None
