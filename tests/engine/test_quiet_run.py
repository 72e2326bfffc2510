"""A quiet headless run (``--headless --quiet``, no trace, hints or conditions) checks its large
tensors for NaN/Inf before each rewind checkpoint instead of every step, and finds the first bad
step by running the steps since the last check again. The tests compare it with a run that
checks every step (same step, message, exit status, final line and parameters) and with the plain
PyTorch loop's first bad step and parameters."""

from __future__ import annotations

import io
import math

import pytest

from gdtui.engine import Session
from gdtui.engine.conditions import RisingLoss
from gdtui.engine.headless import run_headless
from gdtui.engine.runner import StepPlan
from tests.plain_loop import PlainLoop


def both_ways(path, steps: int, *, rising: int | None = None, **options) -> dict[bool, tuple]:
    """run_headless on a fresh session that checks every step (False) and on a quiet one (True):
    (exit status, step count, stderr, last stdout line, the first tensor's values)."""
    seen = {}
    for quiet in (False, True):
        session = Session(path, watch_activations=False, **options)
        if rising is not None:
            session.panel.set_rising(RisingLoss(rising))
        out, err = io.StringIO(), io.StringIO()
        status = run_headless(session, steps, quiet=quiet, out=out, err=err)
        lines = out.getvalue().splitlines()
        seen[quiet] = (status, session.step_count, err.getvalue(), lines[-1] if lines else "",
                       session.loop.tensors[0].tolist())
    return seen


# A parameter of 100 elements whose first element overflows to -inf while the loss stays finite:
# each step moves w[0] by -lr * 1 = -5e37, and float32 ends at 3.4e38. The loss of the step that overflows was
# taken before its update, so only a check of w itself sees that step go bad.
OVERFLOWS = (
    "import torch\n"
    "w = torch.zeros(100, requires_grad=True)\n"
    "model = lambda x: x * w\n"
    "def loss_fn(pred, y):\n"
    "    {check}\n"
    "    return pred.sum()\n"
    "x = torch.zeros(100)\n"
    "x[0] = 1.0\n"
    "data = (x, torch.zeros(100))\n"
    "optimizer = torch.optim.SGD([w], lr=5e37)\n"
)


def first_nonfinite_step(path) -> tuple[int, list[float]]:
    """The plain loop's first step after which w is not finite, and w then."""
    plain = PlainLoop(path)
    for step in range(1, 50):
        out = plain.step()
        assert math.isfinite(out["loss"])
        if not all(map(math.isfinite, out["params"][0])):
            return step, out["params"][0]
    raise AssertionError("w never overflowed")


@pytest.mark.parametrize("check", ["pass", "assert torch.isfinite(pred).all(), 'pred is not finite'"])
@pytest.mark.parametrize("every", [1, 3, 5, 100])
@pytest.mark.parametrize("extra", [0, 5])
@pytest.mark.parametrize("history_mb", [256, 0.0001])
def test_a_quiet_run_checks_at_checkpoints_and_still_stops_at_the_first_nonfinite_step(tmp_path, check, every, extra, history_mb):
    """A quiet headless run defers the NaN/Inf check of its large tensors to the checkpoints. Whether
    the overflow is found at a checkpoint, at the end of the run, or only after the scenario's own
    assert fails on the next step (check), the run stops at the plain loop's first bad step, as a
    run that checks every step does, and the session holds the plain loop's w. With a budget below
    one snapshot (rewind turns off at the first checkpoint) every step is checked."""
    path = tmp_path / "overflows.py"
    path.write_text(OVERFLOWS.format(check=check))
    k, w = first_nonfinite_step(path)
    assert k == 7 and w[0] == -math.inf
    seen = {}
    for quiet in (True, False):
        session = Session(path, checkpoint_every=every, watch_activations=False, history_mb=history_mb)
        out, err = io.StringIO(), io.StringIO()
        assert run_headless(session, k + extra, quiet=quiet, out=out, err=err) == 3
        seen[quiet] = err.getvalue()
        assert session.step_count == k and session.loop.tensors[0].tolist() == w
    assert seen[True] == seen[False] == f"{path}: step {k}: w became NaN/Inf; lower the learning rate (--lr) or check the data\n"


@pytest.mark.parametrize("history_mb", [256, 0.0001])
def test_a_quiet_run_stops_at_step_1_when_the_first_update_overflows(tmp_path, history_mb):
    """w[0] starts at -3e38, so the first update takes it to -inf while step 1's loss is finite:
    step 1 is where the run stops, with rewind on and with a budget that turns rewind off at
    the first checkpoint (the step that found it off had been deferred already)."""
    path = tmp_path / "overflows_at_once.py"
    path.write_text(OVERFLOWS.format(check="pass").replace("x[0] = 1.0", "x[0] = 1.0\nwith torch.no_grad():\n    w[0] = -3e38"))
    out = PlainLoop(path).step()
    assert math.isfinite(out["loss"]) and out["params"][0][0] == -math.inf
    session = Session(path, watch_activations=False, history_mb=history_mb)
    err = io.StringIO()
    assert run_headless(session, 5, quiet=True, out=io.StringIO(), err=err) == 3
    assert err.getvalue().startswith(f"{path}: step 1: w became NaN/Inf")


def test_deferred_steps_leave_large_tensors_unread_until_check_deferred(tmp_path):
    """What the deferral saves: step 7's record does not see w overflow (nothing read w), and
    check_deferred then runs steps 1-7 again from the checkpoint at 0 and returns step 7's record,
    as a session that checks every step gives it."""
    path = tmp_path / "overflows.py"
    path.write_text(OVERFLOWS.format(check="pass"))
    k, _ = first_nonfinite_step(path)
    deferred = Session(path, checkpoint_every=100, watch_activations=False)
    records = [deferred.step(StepPlan(whole=False, defer=True)) for _ in range(k)]
    assert records[-1].nonfinite is None and math.isnan(records[-1].params["w"].norm)
    checked = Session(path, watch_activations=False)
    expected = [checked.step(StepPlan(whole=False)) for _ in range(k)][-1]
    assert expected.nonfinite == "w"
    assert deferred.check_deferred() == expected and deferred.step_count == k
    assert deferred.check_deferred() is None  # nothing left to check


def test_a_step_returns_its_own_record_when_its_check_finds_an_earlier_bad_step(tmp_path):
    """Issue 13: no step returns an earlier step's record. w overflows at the plain loop's step k
    (its loss stays finite; step k + 1's loss is -inf); with a checkpoint every k + 1 steps, step
    k + 1's check finds step k: step k + 1's own record comes back, and take_first_bad gives step
    k's, once, with w as the plain loop has it after step k; the session is just after step k."""
    path = tmp_path / "overflows.py"
    path.write_text(OVERFLOWS.format(check="pass"))
    k, w = first_nonfinite_step(path)
    session = Session(path, checkpoint_every=k + 1, watch_activations=False)
    records = [session.step(StepPlan(whole=False, defer=True)) for _ in range(k + 1)]
    assert [r.step for r in records] == list(range(1, k + 2))
    assert records[-1].loss == -math.inf and records[-1].nonfinite == "loss"
    bad = session.take_first_bad()
    assert bad.step == k and bad.nonfinite == "w" and session.step_count == k
    assert session.last is bad and session.loop.tensors[0].tolist() == w
    assert session.take_first_bad() is None


RPROP_SQRT = (
    "import torch\n"
    "torch.manual_seed(0)\n"
    "w = torch.randn(100, requires_grad=True)\n"
    "target = torch.randn(100)\n"
    "target[0] = 0.0\n"
    "model = lambda x: x * w\n"
    "loss_fn = lambda pred, y: ((pred - y) ** 2).sqrt().sum()\n"
    "x = torch.ones(100)\n"
    "x[0] = 0.0\n"
    "data = (x, target)\n"
    "optimizer = torch.optim.Rprop([w], lr=0.01)\n"
)


@pytest.mark.parametrize("every", [None, 100])
def test_a_nan_gradient_the_parameters_never_show_is_found_in_the_optimizer_state(tmp_path, every):
    """sqrt's gradient at 0 is NaN while the loss is finite, and Rprop steps by the gradient's sign,
    so w stays finite (the plain loop shows it); the NaN lives on in Rprop's state, which the
    deferred check reads: the quiet run stops at step 1 on the gradient, as the checked run does."""
    path = tmp_path / "rprop.py"
    path.write_text(RPROP_SQRT)
    plain = PlainLoop(path)
    out = plain.step()
    assert math.isfinite(out["loss"]) and math.isnan(out["grads"][0][0]) and all(map(math.isfinite, out["params"][0]))
    seen = both_ways(path, 20, checkpoint_every=every)
    assert seen[True] == seen[False]
    # (issue 14: the line names where the NaN began, sqrt's gradient at 0 flowing into the result of ** on line 7)
    assert seen[True][:3] == (3, 1, f"{path}: step 1: grad of w became NaN/Inf, first in the gradient of the result of "
                                    "torch.pow on line 7; lower the learning rate (--lr) or check the data\n")
    assert seen[True][4] == out["params"][0]


ADAM_OVERFLOWS = (
    "import torch\n"
    "w = torch.zeros(100, requires_grad=True)\n"
    "model = lambda x: x * w\n"
    "loss_fn = lambda pred, y: pred.sum() * 0.01\n"
    "x = torch.zeros(100)\n"
    "x[0] = 1.0\n"
    "data = (x, torch.zeros(100))\n"
    "optimizer = torch.optim.Adam([w], lr=3e37)\n"
)


@pytest.mark.parametrize("history_mb", [0.0003, 0.0012, 0.003, 256])
@pytest.mark.parametrize("every", [None, 2, 5])
def test_checkpoints_dropped_past_a_small_budget_still_leave_the_last_check_to_replay_from(tmp_path, history_mb, every):
    """Adam moves w[0] by about -3e37 a step (the plain loop: -inf at step 12). Budgets from one
    that turns rewind off once Adam's state appears to one that drops checkpoints every few steps:
    the quiet run stops where the checked one does."""
    path = tmp_path / "adam.py"
    path.write_text(ADAM_OVERFLOWS)
    k, w = first_nonfinite_step(path)
    seen = both_ways(path, 20, history_mb=history_mb, checkpoint_every=every)
    assert seen[True] == seen[False]
    assert seen[True][:2] == (3, k) and seen[True][4] == w


@pytest.mark.parametrize("rising", [1, 3, 6, 8])
def test_a_stop_on_a_rising_loss_after_an_unchecked_overflow_stops_at_the_overflow(tmp_path, rising):
    """SGD with maximize=True moves w[0] up by 5e37 a step, so the loss (w[0] before the step) rises
    every step and w[0] is inf after step 7. "loss rose k steps in a row" stops the run at step
    k + 1 while w is finite (k = 1, 3), and at the overflow (exit status 3) from k = 6 on."""
    path = tmp_path / "rises.py"
    path.write_text(OVERFLOWS.format(check="pass").replace("lr=5e37)", "lr=5e37, maximize=True)"))
    seen = both_ways(path, 20, checkpoint_every=100, rising=rising)
    assert seen[True] == seen[False]
    assert seen[True][:2] == ((0, rising + 1) if rising < 6 else (3, 7))


def test_a_step_that_fails_when_run_again_is_one_line_and_exit_status_2(tmp_path):
    """The scenario overflows w on its third loss call only and raises after its fourth: running
    the steps again to find the NaN fails, and the quiet run says so in one line (no traceback)."""
    path = tmp_path / "nondeterministic.py"
    path.write_text(
        "import torch\n"
        "class Calls:\n"  # a count gdtui cannot snapshot (a list or an int it would put back)
        "    n = 0\n"
        "calls = Calls()\n"
        "w = torch.zeros(100, requires_grad=True)\n"
        "model = lambda x: x * w\n"
        "def loss_fn(pred, y):\n"
        "    calls.n += 1\n"
        "    if calls.n > 4:\n"
        "        raise RuntimeError('ran out of curriculum')\n"
        "    return (pred * (3e38 if calls.n == 3 else 0.0)).sum()\n"
        "x = torch.zeros(100)\n"
        "x[0] = 1.0\n"
        "data = (x, torch.zeros(100))\n"
        "optimizer = torch.optim.SGD([w], lr=2.0)\n"
    )
    session = Session(path, watch_activations=False, checkpoint_every=100)
    err = io.StringIO()
    assert run_headless(session, 3, quiet=True, out=io.StringIO(), err=err) == 2
    message = err.getvalue()
    assert message.count("\n") == 1 and "ran out of curriculum" in message and "not deterministic" in message
    assert "gdtui does not snapshot calls (a Calls)" in message


def test_ctrl_c_after_an_unchecked_overflow_reports_the_overflow(tmp_path):
    """Ctrl-C (a KeyboardInterrupt as step 10 starts, three steps after w overflows at step 7; the
    loss goes through nan_to_num, so it stays finite): the checked run stopped at step 7 already,
    and the quiet one stops there too, not with status 130."""
    path = tmp_path / "overflows.py"
    path.write_text(OVERFLOWS.format(check="pass").replace("return pred.sum()", "return torch.nan_to_num(pred).sum()"))
    seen = {}
    for quiet in (False, True):
        session = Session(path, watch_activations=False, checkpoint_every=100)
        step = session.step

        def interrupted(*args, session=session, step=step, **kwargs):
            if session.step_count == 9:
                raise KeyboardInterrupt
            return step(*args, **kwargs)

        session.step = interrupted
        err = io.StringIO()
        seen[quiet] = (run_headless(session, 20, quiet=quiet, out=io.StringIO(), err=err), session.step_count, err.getvalue())
    assert seen[True] == seen[False] and seen[True][:2] == (3, 7)


def test_the_quiet_cli_run_defers_and_runs_the_steps_since_its_last_check_again(tmp_path):
    """What the README warns of, and the sign that the headless runner defers at all: with one
    checkpoint (step 0), the quiet run finds w's overflow only when the loss goes -inf at step 8,
    then runs steps 1-7 again; a run that checks every step calls loss_fn once a step up to 7.
    (The session's own check of the scenario calls it once more, before step 1.) The count is
    a class attribute, which a rewind does not put back (a module-level list would be)."""
    path = tmp_path / "counted.py"
    path.write_text(OVERFLOWS.format(check="Counted.calls.append(1)").replace(
        "import torch\n", "import torch\nclass Counted:\n    calls = []\n", 1))
    counts = {}
    for quiet in (False, True):
        session = Session(path, watch_activations=False, checkpoint_every=100)
        assert run_headless(session, 20, quiet=quiet, out=io.StringIO(), err=io.StringIO()) == 3
        counts[quiet] = len(session.scenario.namespace["Counted"].calls)
    assert counts == {False: 1 + 7, True: 1 + 8 + 7}


def test_ctrl_c_in_the_middle_of_a_step_still_finds_the_first_nonfinite_step(tmp_path):
    """Ctrl-C lands in step 9's loss: the quiet run undoes that step, checks, and stops at step 7."""
    path = tmp_path / "interrupted.py"
    path.write_text(OVERFLOWS.format(check="pass").replace(
        "def loss_fn(pred, y):\n", "calls = 0\ndef loss_fn(pred, y):\n    global calls\n    calls += 1\n"
        "    if calls == 9:\n        raise KeyboardInterrupt\n"
    ).replace("return pred.sum()", "return torch.nan_to_num(pred).sum()"))
    k, w = first_nonfinite_step(path)
    session = Session(path, watch_activations=False, checkpoint_every=100)
    out, err = io.StringIO(), io.StringIO()
    assert run_headless(session, 20, quiet=True, out=out, err=err) == 3
    assert k == 7 and session.step_count == 7 and session.loop.tensors[0].tolist() == w
    assert "step 7: w became NaN/Inf" in err.getvalue()


def test_once_checks_stop_for_a_state_that_overflows_on_its_own_they_cost_the_checkpoints_nothing(tmp_path):
    path = tmp_path / "state_overflow.py"
    path.write_text("import torch\nw = torch.zeros(100, requires_grad=True)\nmodel = lambda x: x * w\n"
                    "loss_fn = lambda pred, y: (pred * 1e25).sum()\ndata = (torch.ones(100), torch.zeros(100))\n"
                    "optimizer = torch.optim.Adam([w], lr=1e-3)\n")
    session = Session(path, watch_activations=False, checkpoint_every=3)
    for _ in range(4):
        session.step(StepPlan(whole=False, defer=True))
    assert not session.rewinder.may_defer and session.rewinder.history._check_seconds == 0.0  # not the replay's time


RISES_WHILE_ADAM_STATE_OVERFLOWS = (
    "import torch\n"
    "w = torch.zeros(100, requires_grad=True)\n"
    "u = torch.zeros(1, requires_grad=True)\n"
    "model = lambda x: x * w\n"
    "loss_fn = lambda pred, y: (pred * 1e25).sum() + u.sum()\n"
    "data = (torch.ones(100), torch.zeros(100))\n"
    "optimizer = torch.optim.Adam([{'params': [w]}, {'params': [u], 'maximize': True}], lr=1e-3)\n"
)


@pytest.mark.parametrize("rising", [1, 2, 3, 4])
def test_a_rising_loss_is_checked_at_the_step_whose_deferred_check_ran_steps_again(tmp_path, rising):
    """Issue 13: the stop conditions checked after a step are those of the controls it began with,
    not those of the steps a deferred check ran again (at the checkpoint after step 3, Adam's state
    for w is inf while w stays finite, so the check runs steps 1-3 again). u climbs by lr a step, so
    the loss rises every step: the quiet run stops where the checked one does, at step k + 1."""
    path = tmp_path / "rises.py"
    path.write_text(RISES_WHILE_ADAM_STATE_OVERFLOWS)
    seen = both_ways(path, 20, checkpoint_every=3, rising=rising)
    assert seen[True] == seen[False]
    assert seen[True][:2] == (0, rising + 1)
