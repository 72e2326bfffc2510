"""gdtui.engine.runner.Run, the one run loop: its events, its trace and its stops, against a plain
PyTorch loop written out over the same scenario (tests/plain_loop.py's PlainLoop)."""

from __future__ import annotations

import math

from gdtui.engine import Session
from gdtui.engine.records import PHASES
from gdtui.engine.runner import EveryStep, Frame, Run, Stepped, StepPlan, Stopped, step_phase
from gdtui.engine.trace import TraceWriter
from tests.paths import SCENARIOS
from tests.plain_loop import PlainLoop, read_trace, timeline

NOT_GATE = SCENARIOS / "not_gate.py"
WHOLE = EveryStep(StepPlan(whole=True))
#: A quiet headless run's plan: light steps whose large tensors' NaN/Inf check waits for a checkpoint.
DEFERRED = EveryStep(StepPlan(whole=False, hints=True, defer=True))

# w[0] moves by -5e37 a step and float32 overflows to -inf at step 7, while the loss (taken before
# the update) stays finite: only a check of w sees that step go bad. 100 elements: a large tensor.
OVERFLOWS = """
import torch
w = torch.zeros(100, requires_grad=True)
model = lambda x: x * w
loss_fn = lambda pred, y: pred.sum()
x = torch.zeros(100)
x[0] = 1.0
data = (x, torch.zeros(100))
optimizer = torch.optim.SGD([w], lr=5e37)
"""

# w climbs towards 10 by lr 0.1 of the gradient; the forward fails once it passes 3.
FAILS_PAST_3 = """
import torch
w = torch.zeros(1, requires_grad=True)
def model(x):
    if w.item() > 3:
        raise RuntimeError("w passed 3")
    return x * w
loss_fn = lambda pred, y: ((pred - y) ** 2).sum()
data = (torch.ones(1), torch.full((1,), 10.0))
optimizer = torch.optim.SGD([w], lr=0.1)
"""


def test_a_run_yields_a_stepped_per_step_then_stopped_at_its_limit():
    """Issue 13: the events of a 5-step run of not_gate are 5 Stepped, with the plain loop's losses
    and parameters exactly, then Stopped("limit") holding the last record."""
    plain = PlainLoop(NOT_GATE)
    want = [plain.step() for _ in range(5)]
    session = Session(NOT_GATE)
    events = list(Run(session, 5, schedule=WHOLE))
    assert [type(e) for e in events] == [Stepped] * 5 + [Stopped]
    assert [e.record.loss for e in events[:5]] == [w["loss"] for w in want]
    assert [[v.values for v in e.record.params.values()] for e in events[:5]] == [w["params"] for w in want]
    stopped = events[-1]
    assert (stopped.reason, stopped.steps, stopped.record, stopped.error) == ("limit", 5, events[4].record, None)


def test_a_run_writes_its_own_trace_start_steps_and_end(tmp_path):
    """Issue 13: a run that owns its trace writes the start line, one step line per step with the
    plain loop's loss, and an end line saying the steps were done."""
    plain = PlainLoop(NOT_GATE)
    with TraceWriter(tmp_path / "t.jsonl") as trace:
        stopped = list(Run(Session(NOT_GATE), 3, schedule=WHOLE, trace=trace, trace_ends=True))[-1]
    lines = read_trace(tmp_path / "t.jsonl")
    assert [e["event"] for e in lines] == ["start", "step", "step", "step", "end"]
    assert [e["loss"] for e in lines[1:4]] == [plain.step()["loss"] for _ in range(3)]
    assert lines[-1] == {"event": "end", "steps": 3, "reason": "steps"} and stopped.reason == "limit"


def test_a_nan_found_at_a_later_checkpoint_stops_the_run_at_the_first_bad_step(tmp_path):
    """Issue 13: light steps leave w's NaN/Inf check to the checkpoint after step 9, which finds
    that step 7 (the plain loop's first non-finite w) went bad: Stopped("nonfinite") names step 7,
    no Stepped comes for step 9 or step 7 again, and the trace goes back to step 7 with a rewind line."""
    path = tmp_path / "overflows.py"
    path.write_text(OVERFLOWS)
    plain = PlainLoop(path)
    want = [plain.step() for _ in range(7)]
    assert all(map(math.isfinite, want[5]["params"][0])) and want[6]["params"][0][0] == -math.inf
    session = Session(path, checkpoint_every=3, watch_activations=False)
    with TraceWriter(tmp_path / "t.jsonl") as trace:
        events = list(Run(session, 20, schedule=DEFERRED, trace=trace, trace_ends=True))
    assert [e.record.step for e in events if type(e) is Stepped] == list(range(1, 9))
    stopped = events[-1]
    assert (stopped.reason, stopped.message, stopped.record.step, stopped.steps) == ("nonfinite", "w", 7, 7)
    assert session.step_count == 7 and session.loop.tensors[0].tolist() == want[6]["params"][0]
    lines = read_trace(tmp_path / "t.jsonl")
    assert {"event": "rewind", "step": 6} in lines
    assert [s["loss"] for s in timeline(lines)] == [w["loss"] for w in want]
    assert lines[-1] == {"event": "end", "steps": 7, "reason": "nonfinite", "message": "w"}


def test_a_nan_left_unchecked_at_the_limit_is_found_before_the_run_stops(tmp_path):
    """Issue 13: with no checkpoint after step 0 in 10 light steps, the check the run makes as it
    stops finds step 7 went NaN/Inf: Stopped("nonfinite") at step 7, not "limit" at 10, and the
    trace's timeline is the plain loop's steps 1 to 7."""
    path = tmp_path / "overflows.py"
    path.write_text(OVERFLOWS)
    plain = PlainLoop(path)
    losses = [plain.step()["loss"] for _ in range(7)]
    session = Session(path, checkpoint_every=100, watch_activations=False)
    with TraceWriter(tmp_path / "t.jsonl") as trace:
        stopped = list(Run(session, 10, schedule=DEFERRED, trace=trace, trace_ends=True))[-1]
    assert (stopped.reason, stopped.record.step, session.step_count) == ("nonfinite", 7, 7)
    lines = read_trace(tmp_path / "t.jsonl")
    assert [s["loss"] for s in timeline(lines)] == losses
    assert lines[-1]["reason"] == "nonfinite"


def test_a_stop_condition_stops_the_run_after_the_step_where_it_holds(tmp_path):
    """Issue 13: --until "loss < 0.45" on not_gate stops after the plain loop's first step with a
    loss under 0.45; the trace ends "until" with the condition's text."""
    plain = PlainLoop(NOT_GATE)
    k = next(n for n in range(1, 200) if plain.step()["loss"] < 0.45)
    session = Session(NOT_GATE)
    session.panel.add_condition("loss < 0.45", kind="until")
    with TraceWriter(tmp_path / "t.jsonl") as trace:
        stopped = list(Run(session, 200, schedule=WHOLE, trace=trace, trace_ends=True))[-1]
    assert (stopped.reason, stopped.record.step, stopped.message, stopped.hits) == ("condition", k, "loss < 0.45", ("loss < 0.45",))
    assert read_trace(tmp_path / "t.jsonl")[-1] == {"event": "end", "steps": k, "reason": "until", "message": "loss < 0.45"}


def test_queued_steps_run_on_past_a_stop_condition():
    """Issue 13: with ``conditions=False`` (the step key's queued steps) a condition that holds
    from step 1 does not stop the run: it reaches its limit."""
    session = Session(NOT_GATE)
    session.panel.add_condition("loss > 0")
    stopped = list(Run(session, 4, schedule=WHOLE, conditions=False))[-1]
    assert (stopped.reason, session.step_count) == ("limit", 4)


def test_a_limit_of_zero_and_a_pause_stop_where_asked():
    """Issue 13: a run of 0 steps stops at once with no record; a run paused after its 3rd step
    stops there ("paused") with the plain loop's loss of step 3."""
    session = Session(NOT_GATE)
    assert list(Run(session, 0, schedule=WHOLE)) == [Stopped("limit", None)]
    seen: list[int] = []
    run = Run(session, None, schedule=WHOLE, paused=lambda: len(seen) >= 3)
    for event in run:
        if type(event) is Stepped:
            seen.append(event.record.step)
    plain = PlainLoop(NOT_GATE)
    assert seen == [1, 2, 3] and run.stopped.reason == "paused"
    assert run.stopped.record.loss == [plain.step()["loss"] for _ in range(3)][-1]


def test_a_failing_step_stops_the_run_with_its_one_line_error(tmp_path):
    """Issue 13: the forward fails at the first step whose w is past 3 in the plain loop: the run
    stops there ("error"), counting the steps before it, and the trace ends "error"."""
    path = tmp_path / "fails.py"
    path.write_text(FAILS_PAST_3)
    plain = PlainLoop(path)
    done = 0
    while plain.ns["w"].item() <= 3:
        plain.step()
        done += 1
    session = Session(path)
    with TraceWriter(tmp_path / "t.jsonl") as trace:
        events = list(Run(session, 100, schedule=WHOLE, trace=trace, trace_ends=True))
    stopped = events[-1]
    assert (stopped.reason, stopped.steps, session.step_count) == ("error", done, done)
    assert f"step {done + 1}:" in stopped.error and "w passed 3" in stopped.error and stopped.message == stopped.error
    end = read_trace(tmp_path / "t.jsonl")[-1]
    assert (end["reason"], end["steps"], end["message"]) == ("error", done, stopped.error)


def test_an_interrupt_between_two_events_stops_the_run_as_interrupted(tmp_path):
    """Issue 13: a KeyboardInterrupt raised in the consumer after step 3's event is handed to
    ``interrupt``: Stopped("interrupted") counts 3 steps, and the trace ends "interrupted" after
    the plain loop's 3 steps."""
    plain = PlainLoop(NOT_GATE)
    with TraceWriter(tmp_path / "t.jsonl") as trace:
        run = Run(Session(NOT_GATE), 10, schedule=WHOLE, trace=trace, trace_ends=True)
        for event in run:
            if event.record.step == 3:
                stopped = run.interrupt(KeyboardInterrupt())
                break
    assert (stopped.reason, stopped.steps, type(stopped.interrupt)) == ("interrupted", 3, KeyboardInterrupt)
    lines = read_trace(tmp_path / "t.jsonl")
    assert [e["loss"] for e in lines if e["event"] == "step"] == [plain.step()["loss"] for _ in range(3)]
    assert lines[-1] == {"event": "end", "steps": 3, "reason": "interrupted"}


class ShowEvery:
    """A schedule that shows every ``n``-th step, for the Frame events."""

    whole_at_stop = True

    def __init__(self, n: int):
        self.n, self.count = n, 0

    def plan(self, left):
        return StepPlan(whole=True, show=(self.count + 1) % self.n == 0)

    def stepped(self, plan, seconds):
        self.count += 1

    def frame(self):
        return 123.0, True

    def framed(self):
        pass


def test_a_shown_step_is_followed_by_its_frame():
    """Issue 13: the schedule's shown steps (every 2nd) each yield a Frame after their Stepped,
    with the schedule's rate; the records are the plain loop's."""
    plain = PlainLoop(NOT_GATE)
    events = list(Run(Session(NOT_GATE), 4, schedule=ShowEvery(2)))
    assert [type(e) for e in events] == [Stepped, Stepped, Frame, Stepped, Stepped, Frame, Stopped]
    assert [(e.record.step, e.steps_per_s, e.chart) for e in events if type(e) is Frame] == [(2, 123.0, True), (4, 123.0, True)]
    assert [e.record.loss for e in events if type(e) is Stepped] == [plain.step()["loss"] for _ in range(4)]


def test_a_phase_step_writes_its_trace_line_once_the_step_is_whole(tmp_path):
    """Issue 13: the phase key goes through the runner's step_phase: the trace gets a step's line
    when its last phase finishes, none before, and the lines have the plain loop's losses."""
    session = Session(NOT_GATE)
    plain = PlainLoop(NOT_GATE)
    with TraceWriter(tmp_path / "t.jsonl") as trace:
        for k in (1, 2):
            records = [step_phase(session, trace) for _ in PHASES]
            assert records[:-1] == [None] * (len(PHASES) - 1) and records[-1].step == k
            assert [e["step"] for e in read_trace(tmp_path / "t.jsonl") if e["event"] == "step"] == list(range(1, k + 1))
    losses = [e["loss"] for e in read_trace(tmp_path / "t.jsonl") if e["event"] == "step"]
    assert losses == [plain.step()["loss"] for _ in range(2)]
