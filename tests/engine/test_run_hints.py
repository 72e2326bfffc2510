"""A continuous run measures nothing for the hints between frames, yet its shown steps get whole hints.

The steps between two frames of a run skip the copy before the update and the
norms (see FramePacer, the schedule of gdtui.engine.runner.Run); the HINT_LOOKBACK steps before a shown one measure
them. These tests check that a shown step, a paused run's last step and a
rewind's target carry the hints of a run that measured every step, with the
numbers of a plain PyTorch loop, and that the steps left unmeasured say so.
"""

from __future__ import annotations

import json
import math
import re
from types import SimpleNamespace

import pytest
import torch

from gdtui.engine import Session, pacing
from gdtui.engine.health import FROZEN_STEPS, HINT_LOOKBACK
from gdtui.engine.pacing import FramePacer
from gdtui.engine.runner import Frame, Run, Stepped, StepPlan
from gdtui.engine.trace import TraceWriter
from tests.paths import SCENARIOS
from tests.plain_loop import PlainLoop

#: A ReLU net with an lr low enough for update-ratio hints, and a tensor that gets a gradient of 0
#: (so it is frozen). Its weights have over 64 values: light steps treat them apart.
SCENARIO = '''
import torch
from torch import nn

torch.manual_seed(0)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(100, 80), nn.ReLU(), nn.Linear(80, 1))
        self.unused = nn.Parameter(torch.randn(200))

    def forward(self, x):
        return self.body(x) + 0.0 * self.unused.sum()


x = torch.randn(32, 100)
y = torch.randn(32, 1)
model = Net()
loss_fn = nn.MSELoss()
data = (x, y)
optimizer = torch.optim.SGD(model.parameters(), lr=1e-5)
'''
STEPS = 30


@pytest.fixture
def scenario(tmp_path):
    path = tmp_path / "frozen_net.py"
    path.write_text(SCENARIO)
    return path


def whole_run(path, steps=STEPS):
    """Every step measured and whole: the reference the run's shown steps must equal."""
    session = Session(path)
    return [session.step() for _ in range(steps)]


def same_hints(got, want, step, count=None):
    """The same hints, word for word, but for a frozen tensor's count of unchanged steps: the steps
    measured in a row up to ``step`` (``count``, or from FROZEN_STEPS to ``step`` when None), where a
    run that measured every step has ``step``."""
    assert [h.kind for h in got] == [h.kind for h in want]
    for g, w in zip(got, want):
        if g.kind == "frozen":
            n = int(re.search(r"for (\d+) steps", g.message).group(1))
            assert n == count if count is not None else FROZEN_STEPS <= n <= step
            assert g.message.replace(f"for {n} steps", f"for {step} steps") == w.message
        else:
            assert g.message == w.message


class FakeClock:
    """The pacer's clock, set by the test; the session keeps the real one."""

    def __init__(self):
        self.t = 0.0

    def perf_counter(self) -> float:
        return self.t


def test_a_runs_shown_steps_have_the_hints_of_a_run_that_measured_every_step(scenario, monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(pacing, "time", SimpleNamespace(perf_counter=clock.perf_counter))
    session = Session(scenario)
    records, shown_steps = [], []
    for event in Run(session, STEPS, schedule=FramePacer(interval=5.5), conditions=False):
        if type(event) is Stepped:
            records.append(event.record)
            clock.t = float(event.record.step)  # the step took a second
        elif type(event) is Frame:
            shown_steps.append(event.record.step)
    # each step takes a second of the pacer's clock: due at steps 7, 16, 25 (5.5 s after the frame
    # before); shown once HINT_LOOKBACK steps measured
    assert shown_steps == [9, 18, 27]
    want = whole_run(scenario)
    plain = PlainLoop(scenario)
    w = dict(plain.ns["model"].named_parameters())["body.0.weight"]
    for record in records:
        before = w.detach().clone()
        out = plain.step()
        assert record.loss == out["loss"]
        measured = bool(record.unchanged)
        # measured: the shown steps, the HINT_LOOKBACK before each, and those before the run's last;
        # and the first HINT_LOOKBACK, which rewind could not run again with the steps before them
        windows = [*shown_steps, STEPS, HINT_LOOKBACK]
        assert measured == any(s - HINT_LOOKBACK <= record.step <= s for s in windows)
        if not measured:
            assert record.light and record.hints == () and math.isnan(record.updates["body.0.weight"].norm)
            continue
        assert record.updates["body.0.weight"].norm == torch.dist(w.detach(), before).double().item()
        assert record.update_ratio("unused") == 0.0
    for step, count in zip([*shown_steps, STEPS], [3, 3, 3, 6]):  # the last six steps are measured (25 to 30)
        got = records[step - 1]
        assert not got.light
        assert "frozen" in [h.kind for h in got.hints] and "update_ratio" in [h.kind for h in got.hints]
        same_hints(got.hints, want[step - 1].hints, step, count)


def test_a_paused_runs_last_step_is_made_whole_with_its_hints(scenario):
    """The run stopped between frames (a key press): detail_last runs the step again, and the
    HINT_LOOKBACK steps before it, which the run did not measure. Checkpoints every step, so the
    step before has its own: without that lead, "frozen" would be missing."""
    session = Session(scenario, checkpoint_every=1)
    for _ in range(12):
        record = session.step(StepPlan(whole=False, hints=False))
    assert record.light and not record.unchanged and record.hints == ()
    got = session.detail_last()
    want = whole_run(scenario, 12)[-1]
    assert not got.light and got.loss == want.loss and got.params == want.params
    assert session.step_count == 12
    same_hints(got.hints, want.hints, 12)
    assert dict(got.unchanged) == {**{n: 0 for n in got.params}, "unused": FROZEN_STEPS}


@pytest.mark.parametrize("every", [1, 4, None])
def test_a_rewind_into_an_unmeasured_stretch_shows_whole_hints(scenario, every):
    session = Session(scenario, checkpoint_every=every)
    for _ in range(20):
        session.step(StepPlan(whole=False, hints=False))
    assert session.rewind(6) == 6
    got = session.last
    want = whole_run(scenario, 14)[-1]
    assert got.step == 14 and not got.light and got.params == want.params
    same_hints(got.hints, want.hints, 14)
    after, want = session.step(), whole_run(scenario, 15)[-1]  # and it steps on as a whole run does
    assert after.params == want.params and after.loss == want.loss
    same_hints(after.hints, want.hints, 15)


def test_a_stop_condition_still_measures_every_step(scenario):
    session = Session(scenario)
    session.panel.add_condition('update_ratio["body.0.weight"] > 10')
    record = session.step(StepPlan(whole=False, hints=False))
    assert record.unchanged and not math.isnan(record.updates["body.0.weight"].norm)


def test_the_logs_line_of_an_unmeasured_step_gives_shapes_not_nan_norms(scenario, tmp_path):
    session = Session(scenario)
    plain = PlainLoop(scenario)
    for _ in range(HINT_LOOKBACK):  # (the first steps measure: see above)
        session.step(StepPlan(whole=False))
        plain.step()
    measured = session.step(StepPlan(whole=False))
    unmeasured = session.step(StepPlan(whole=False, hints=False))
    with TraceWriter.export_log(session.max_values, prefix="gdtui-test-") as trace:
        trace.step(measured)
        trace.step(unmeasured)
        trace.flush()
        lines = trace.path.read_text().splitlines()
    trace.path.unlink()
    first, second = (json.loads(line) for line in lines)
    assert first["params"]["body.0.weight"] == {"shape": [80, 100], "norm": measured.params["body.0.weight"].norm}
    assert second["params"]["body.0.weight"] == {"shape": [80, 100]}
    assert second["grads"]["unused"] == {"shape": [200]} and second["params"]["body.0.bias"] == {"shape": [80]}
    assert second["params"]["body.2.bias"] == unmeasured.params["body.2.bias"].values  # a small tensor stays whole
    assert [first["loss"], second["loss"]] == [plain.step()["loss"], plain.step()["loss"]]


# --- where the steps before a step were not all measured ------------------------------------------


def kinds(hints):
    return [h.kind for h in hints]


def run_pattern(session, unmeasured, measured):
    """The pacer's pattern: steps that measure nothing, then the ones before a frame that do."""
    for _ in range(unmeasured):
        session.step(StepPlan(whole=False, hints=False, defer=True))
    for _ in range(measured):
        session.step(StepPlan(whole=False, defer=True))


@pytest.mark.parametrize("every", [1, 2, None])
def test_a_pause_right_after_a_measured_step_still_runs_the_steps_before_it_again(scenario, every):
    """The step paused on measured, but the one before it did not (so its count of unchanged steps
    is 2, not 3): it is made whole with the steps before it, from a checkpoint far enough back."""
    session = Session(scenario, checkpoint_every=every)
    run_pattern(session, 10, 2)
    assert not session.last.hints_whole
    got = session.detail_last()
    assert got.hints_whole and not got.light
    same_hints(got.hints, whole_run(scenario, 12)[-1].hints, 12)


def test_a_rewind_from_a_shown_step_onto_the_measured_one_before_it(scenario):
    session = Session(scenario, checkpoint_every=1)
    run_pattern(session, 10, 2)
    assert session.step().hints_whole  # the shown step: the 2 before it measured
    assert session.rewind(1) == 1
    same_hints(session.last.hints, whole_run(scenario, 12)[-1].hints, 12)


def test_a_model_of_small_tensors_only_reruns_a_measured_step_whose_hints_are_not_whole():
    """dead_relu.py: every tensor is small, so a measured light step has every value (light=False);
    its hints still compare with steps that measured nothing."""
    path = SCENARIOS / "dead_relu.py"
    session = Session(path, checkpoint_every=1)
    run_pattern(session, 11, 1)
    last = session.last
    assert not last.light and not last.hints_whole
    got = session.detail_last()
    want = whole_run(path, 12)[-1]
    assert got.params == want.params and kinds(got.hints) == kinds(want.hints) and "frozen" in kinds(want.hints)


@pytest.mark.parametrize(("history_mb", "every"), [(0, None), (0.07, 1), (0.07, 2)])
def test_a_run_measures_every_step_when_rewind_cannot_reach_the_steps_before_it(scenario, history_mb, every):
    """With rewind off, or a budget that keeps one checkpoint, a paused run's last step could not
    be run again with the steps before it: the run measures each step, as before it was paused."""
    session = Session(scenario, history_mb=history_mb, checkpoint_every=every)
    run_pattern(session, 12, 0)
    got = session.detail_last()
    want = whole_run(scenario, 12)[-1]
    assert got.loss == want.loss and got.hints_whole and math.isfinite(got.update_ratio("body.0.weight"))
    same_hints(got.hints, want.hints, 12)


def test_the_phase_keys_steps_after_a_run_are_whole(scenario):
    session = Session(scenario, history_mb=0)  # a run's last step stays light: nothing to rerun it from
    run_pattern(session, 12, 0)
    for _ in range(3):
        for _ in range(5):
            record = session.step_phase()
    want = whole_run(scenario, 15)[-1]
    assert record.step == 15 and not record.light and record.params == want.params
    same_hints(record.hints, want.hints, 15)


#: Adam's second moment overflows to inf (gradients of 1e25, finite) while the parameters, the
#: gradients and the loss stay finite: a run that checks every step never stops.
STATE_OVERFLOW = """
import torch
w = torch.zeros(100, requires_grad=True)
model = lambda x: x * w
loss_fn = lambda pred, y: (pred * 1e25).sum()
x = torch.ones(100)
data = (x, torch.zeros(100))
optimizer = torch.optim.Adam([w], lr=1e-3)
"""


def test_a_state_that_overflows_on_its_own_is_looked_for_once(tmp_path):
    """The first deferred check runs the steps since the last one again and finds no bad step; the
    run then checks each step, instead of running each stretch twice, and a whole step stays whole."""
    path = tmp_path / "state_overflow.py"
    path.write_text(STATE_OVERFLOW)
    session = Session(path, checkpoint_every=3)
    forwards = 0
    forward = session.loop.forward

    def counted(step):
        nonlocal forwards
        forwards += 1
        forward(step)

    session.loop.forward = counted
    run_pattern(session, 2, 0)
    shown = session.step(StepPlan(defer=True))  # a shown step, checked at the checkpoint after it
    assert not shown.light and shown.nonfinite is None and not session.loop.finite()
    assert session.last is shown and session.state().last is shown
    run_pattern(session, 57, 0)
    assert forwards == 63  # 60 steps, and the 3 before the first check once more
    plain = PlainLoop(path)
    losses = [plain.step()["loss"] for _ in range(60)]
    assert list(session.losses) == losses


class TimedSession:
    """A stand-in for Session that only takes time: ``seconds(i)`` for its i-th step, on ``clock``."""

    def __init__(self, clock, seconds):
        self.clock, self.seconds, self.measured = clock, seconds, []
        self.last_step_seconds = 0.0
        self.step_count = 0

    def step(self, plan):
        took = self.last_step_seconds = self.seconds(len(self.measured))
        self.measured.append(plan.hints)
        self.clock.t += took
        self.step_count += 1
        return SimpleNamespace(step=self.step_count, nonfinite=None)

    def take_first_bad(self):
        return None

    def check_deferred(self):
        return None

    def detail_last(self):
        return None

    def take_replay_note(self):
        return None

    def state(self):
        """What a shown frame carries (the runner builds it once a frame): nothing to show here."""
        return None


@pytest.mark.parametrize("slow", [None, 0, 500], ids=["steady", "slow-first", "slow-midway"])
def test_one_slow_step_does_not_make_a_run_measure_every_later_step(monkeypatch, slow):
    """5 ms steps, one of them 0.6 s: afterwards at most about 2 steps in a frame's 20 measure."""
    clock = FakeClock()
    monkeypatch.setattr(pacing, "time", SimpleNamespace(perf_counter=clock.perf_counter))
    session = TimedSession(clock, lambda i: 0.6 if i == slow else 0.005)
    for _ in Run(session, 2000, schedule=FramePacer(), conditions=False):
        pass
    assert session.measured[1000:].count(True) < 0.2 * 1000


def test_after_a_state_overflow_check_the_next_measured_steps_hints_still_say_what_they_miss(tmp_path):
    """The check's replay measured the steps it ran; the record it puts back did not: the steps
    after it must not count those replays as measured (the frozen hint would go missing)."""
    path = tmp_path / "state_overflow.py"
    path.write_text(STATE_OVERFLOW.replace("model = lambda x: x * w", "unused = torch.zeros(100, requires_grad=True)\n"
                                            "model = lambda x: x * w + 0.0 * unused")
                    .replace("Adam([w]", "Adam([w, unused]"))
    want = whole_run(path, 5)[-1]
    assert "frozen" in kinds(want.hints)
    session = Session(path, checkpoint_every=3)
    run_pattern(session, 0, 2)
    session.step(StepPlan(whole=False, hints=False, defer=True))  # 3, unmeasured; the check after it replays
    assert not session.last.unchanged
    run_pattern(session, 0, 2)
    assert not session.last.hints_whole
    assert kinds(session.detail_last().hints) == kinds(want.hints)


def test_a_stop_condition_added_during_a_step_leaves_it_consistently_unmeasured(scenario):
    """The k screen can add a condition while a run steps: the step in progress settled before its
    update that it measures nothing, and says so; the next one measures for the condition."""
    session = Session(scenario)
    run_pattern(session, 0, HINT_LOOKBACK)
    update = session.loop.update

    def add_then_update(mode, lrs):
        if not session.conditions:
            session.panel.add_condition('update_ratio["body.0.weight"] > 10')
        update(mode, lrs)

    session.loop.update = add_then_update
    record = session.step(StepPlan(whole=False, hints=False, defer=True))
    assert not record.unchanged and not record.hints_whole and record.hints == ()
    after = session.step(StepPlan(whole=False, hints=False, defer=True))
    assert after.unchanged and math.isfinite(after.update_ratio("body.0.weight"))


