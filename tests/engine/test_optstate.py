"""The optimizer's state as gdtui shows it, against a plain PyTorch loop's optimizer.state.

Reference: PlainLoop (tests/plain_loop.py), the notebooks' loop over the scenario's own
objects, run for the same number of steps.
"""

from __future__ import annotations

import pytest

from gdtui.engine import Session
from gdtui.engine.optstate import optimizer_state
from tests.engine.phase_probe import steps_with_probe
from tests.paths import DIAG, ROOT
from tests.plain_loop import PlainLoop


def test_adam_state_equals_the_plain_loops_optimizer_state():
    path = DIAG / "adam.py"
    session = Session(path)
    for _ in range(4):
        session.step()
    view = optimizer_state(session)
    plain = PlainLoop(path)
    for _ in range(4):
        plain.step()
    assert view.optimizer == "Adam" and view.step == 4
    for shown, p in zip(view.tensors, plain.tensors):
        state = plain.opt.state[p]
        assert shown.tensors["exp_avg"].values == state["exp_avg"].tolist()
        assert shown.tensors["exp_avg_sq"].values == state["exp_avg_sq"].tolist()
        assert shown.scalars == {"step": 4.0}


def test_adams_step_size_is_the_step_the_last_update_made():
    path = DIAG / "adam.py"
    session = Session(path)
    for _ in range(3):
        session.step()
    view = optimizer_state(session)
    plain = PlainLoop(path)
    before = [p.tolist() for p in plain.tensors]
    for _ in range(3):
        before, after = [p.tolist() for p in plain.tensors], plain.step()["params"]
    for shown, b, a in zip(view.tensors, before, after):
        moved = [x - y for x, y in zip(a, b)]  # p moved by minus lr·m̂/(√v̂+eps), up to float32 rounding
        assert shown.adam_step.values == pytest.approx([-m for m in moved], rel=1e-5)
    assert "    last step size lr·m̂/(√v̂+eps) = [-0.099276]" in view.lines()


def test_momentum_buffer_equals_the_plain_loops():
    path = DIAG / "momentum.py"
    session = Session(path)
    assert optimizer_state(session).notes == ("no state yet: SGD fills it at its first step",)
    for _ in range(3):
        session.step()
    plain = PlainLoop(path)
    for _ in range(3):
        plain.step()
    (w,) = optimizer_state(session).tensors
    assert w.tensors["momentum_buffer"].values == plain.opt.state[plain.tensors[0]]["momentum_buffer"].item()
    assert w.adam_step is None


def test_plain_sgd_keeps_no_state():
    session = Session(ROOT / "scenarios" / "not_gate.py")
    session.step()
    view = optimizer_state(session)
    assert view.empty
    assert view.lines() == [
        "SGD state after step 1",
        "  w: no state",
        "  b: no state",
        "  note: plain SGD keeps no state: each step uses only the current gradient",
    ]


def test_large_state_is_summarised_not_copied():
    path = DIAG / "wide_linear.py"
    session = Session(path, max_values=100)
    session.step()
    plain = PlainLoop(path)
    plain.step()
    weight, bias = optimizer_state(session).tensors
    m = plain.opt.state[plain.tensors[0]]["exp_avg"]
    assert weight.tensors["exp_avg"].values is None  # 1920 entries > max_values
    # Large tensors are summarised on their device in their own dtype: float32 sums, hence rel 1e-5.
    assert weight.tensors["exp_avg"].mean == pytest.approx(m.double().mean().item(), rel=1e-5)
    assert weight.tensors["exp_avg"].norm == pytest.approx(m.double().norm().item(), rel=1e-5)
    assert bias.tensors["exp_avg"].values == plain.opt.state[plain.tensors[1]]["exp_avg"].tolist()


def test_manual_mode_says_it_ignores_the_state():
    session = Session(DIAG / "adam.py", mode="manual")
    session.panel.set_mode("optim")
    session.step()
    session.panel.set_mode("manual")
    assert "manual mode neither uses nor updates this state" in optimizer_state(session).notes


def test_showing_the_state_at_every_phase_leaves_the_session_as_a_plain_loop():
    path = DIAG / "adam.py"
    got = steps_with_probe(path, optimizer_state, 4)
    plain = PlainLoop(path)
    assert got == [plain.step() for _ in range(4)]
