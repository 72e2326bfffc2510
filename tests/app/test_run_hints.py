"""A continuous run measures nothing for the hints between frames, yet its shown steps get whole hints.

The steps between two frames of a run skip the copy before the update and the
norms (see FramePacer, the schedule of gdtui.engine.runner.Run); the HINT_LOOKBACK steps before a shown one measure
them. These tests check that a shown step, a paused run's last step and a
rewind's target carry the hints of a run that measured every step, with the
numbers of a plain PyTorch loop, and that the steps left unmeasured say so.

The step-debugger's half (it needs textual); the headless half is tests/engine/test_run_hints.py.
"""

from __future__ import annotations

import math

import pytest

from gdtui.engine import Session
from gdtui.jobs import SessionJobs, TraceLog
from gdtui.messages import CommandFailed
from tests.plain_loop import PlainLoop, read_trace, timeline

# --- the NaN/Inf checks a run leaves to later --------------------------------------------------

#: w[0] overflows to -inf at step 7 (each step moves it by -5e37; float32 ends at 3.4e38), and
#: nan_to_num keeps the loss finite, so only a check of w itself sees a step go bad.
HIDDEN_OVERFLOW = """
import torch
w = torch.zeros(100, requires_grad=True)
model = lambda x: x * w
loss_fn = lambda pred, y: torch.nan_to_num(pred).sum()
x = torch.zeros(100)
x[0] = 1.0
data = (x, torch.zeros(100))
optimizer = torch.optim.SGD([w], lr=5e37)
"""


#: The run's check finds w went -inf at step 7 and runs steps 4..7 again, but the forward fails
#: the second time (CALL is the number of the forward that fails). The count lives in a file
#: beside the scenario, where a rewind cannot take it back, as state outside the process would.
FAILS_AGAIN = HIDDEN_OVERFLOW.replace("model = lambda x: x * w", """from pathlib import Path
counter = Path(__file__).with_suffix(".calls")
counter.write_text("0")
def model(x):
    calls = int(counter.read_text()) + 1
    counter.write_text(str(calls))
    if calls == CALL:
        raise RuntimeError("the second time differs")
    return x * w""")


def forwards_made(path):
    """How many forwards the FAILS_AGAIN scenario at ``path`` has made so far."""
    return int(path.with_suffix(".calls").read_text())


@pytest.mark.parametrize(("every", "limit"), [(1, None), (3, None), (100, 20)])
def test_a_run_stops_at_the_first_step_that_went_nonfinite_though_it_checked_later(tmp_path, every, limit):
    """The run worker of the app, with its own log. The overflow is found at the checkpoint after
    step 7 (every=1); at the one after step 9, which takes the session and the log back to step 7
    (every=3); or by the check before the run stops (20 queued steps, and no checkpoint after 0)."""
    path = tmp_path / "hidden_overflow.py"
    path.write_text(HIDDEN_OVERFLOW)
    plain = PlainLoop(path)
    outs = [plain.step() for _ in range(7)]
    assert all(map(math.isfinite, outs[5]["params"][0])) and outs[6]["params"][0][0] == -math.inf
    session = Session(path, checkpoint_every=every)
    posted = []
    jobs = SessionJobs(session, TraceLog(None, seed=0), posted.append)
    jobs.run(limit)
    assert posted[-1].notice == "w went non-finite (NaN or Inf) at step 7; b rewinds, - lowers the lr"
    assert session.step_count == 7 and session.last.nonfinite == "w" and not session.last.light
    assert session.loop.tensors[0].tolist() == outs[6]["params"][0]
    jobs.trace.flush()
    steps = timeline(read_trace(jobs.trace.path))
    jobs.trace.end(session)
    assert [s["step"] for s in steps] == list(range(1, 8))
    assert [s["loss"] for s in steps] == [o["loss"] for o in outs]


def test_a_check_whose_replay_fails_leaves_the_log_where_the_session_is(tmp_path):
    """A run's overflow check replays steps whose forward now fails: the error says "not
    deterministic", and the trace's steps are the plain loop's up to where the session is."""
    probe = tmp_path / "probe.py"
    probe.write_text(FAILS_AGAIN.replace("CALL", "-1"))
    Session(probe)
    loaded = forwards_made(probe)  # the forwards that loading makes
    path = tmp_path / "fails_again.py"
    path.write_text(FAILS_AGAIN.replace("CALL", str(loaded + 9 + 1)))  # the check's first replayed forward
    session = Session(path, checkpoint_every=3)
    posted = []
    jobs = SessionJobs(session, TraceLog(None, seed=0), posted.append)
    jobs.run()
    error = next(m.error for m in posted if isinstance(m, CommandFailed))
    assert "not deterministic" in error and error.endswith(f"back at step {session.step_count}")
    assert 3 <= session.step_count < 9  # a checkpoint the replay reached; the run had logged 9 steps
    jobs.trace.flush()
    steps = timeline(read_trace(jobs.trace.path))
    jobs.trace.end(session)
    plain = PlainLoop(probe)
    assert [s["loss"] for s in steps] == [plain.step()["loss"] for _ in range(session.step_count)]


def test_a_rewind_whose_replay_fails_says_so_and_takes_the_log_back(tmp_path):
    """A rewind replays from the checkpoint and the first replayed forward fails: the error says
    so, the session is at the checkpoint, and the trace holds no step past it."""
    path = tmp_path / "fails_again.py"
    path.write_text(FAILS_AGAIN.replace("lr=5e37", "lr=0.1").replace("CALL", "LOADED + 4"))
    probe = tmp_path / "probe.py"
    probe.write_text(FAILS_AGAIN.replace("CALL", "-1"))
    Session(probe)
    loaded = forwards_made(probe)
    path.write_text(path.read_text().replace("LOADED", str(loaded)))  # the 1st forward a rewind replays
    session = Session(path, checkpoint_every=100)
    posted = []
    jobs = SessionJobs(session, TraceLog(None, seed=0), posted.append)
    jobs.steps(3)
    jobs.rewind()
    failed = [m.error for m in posted if isinstance(m, CommandFailed)]
    assert len(failed) == 1 and "not deterministic" in failed[0] and session.step_count == 0
    jobs.trace.flush()
    steps = timeline(read_trace(jobs.trace.path))
    jobs.trace.end(session)
    assert steps == []

