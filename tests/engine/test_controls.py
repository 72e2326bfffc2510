"""The session's controls as one frozen value, read once as each step starts; its public seams.

References: PlainLoop (tests/conftest.py), stepped with the controls gdtui should have used.
"""

from __future__ import annotations

import dataclasses

import pytest

from gdtui.engine import PHASES, Session
from gdtui.engine.controls import Controls
from gdtui.engine.runner import EveryStep, Run, StepPlan
from tests.paths import SCENARIOS
from tests.plain_loop import PlainLoop

NOT_GATE = SCENARIOS / "not_gate.py"


def values(record):
    return [v.values for v in record.params.values()]


@pytest.mark.parametrize("phases_run", range(1, len(PHASES)))
def test_a_learning_rate_set_during_a_step_applies_from_the_next_step(phases_run):
    """Issue 13: a control changed during a step (after any of its phases) applies at the next one:
    the step in progress keeps the learning rate it began with, as a plain loop that sets the new
    rate between the two steps."""
    session, plain = Session(NOT_GATE), PlainLoop(NOT_GATE)
    old = plain.opt.param_groups[0]["lr"]
    for _ in range(phases_run):
        session.step_phase()
    session.panel.set_lr(0.25)
    first = session.step()
    assert first.lr == old and values(first) == plain.step()["params"]
    plain.opt.param_groups[0]["lr"] = 0.25
    for _ in range(3):
        record = session.step()
        assert record.lr == 0.25 and values(record) == plain.step()["params"]


def test_a_mode_switched_during_a_step_applies_from_the_next_step():
    """Issue 13: switching to manual mode after the step's backward leaves that step's update to the
    optimizer; the next step is manual, as in a plain loop stepped optim then manual."""
    session, plain = Session(NOT_GATE), PlainLoop(NOT_GATE)
    for _ in range(PHASES.index("update")):
        session.step_phase()
    session.panel.toggle_mode()
    first = session.step()
    assert first.mode == "optim" and values(first) == plain.step("optim")["params"]
    second = session.step()
    assert second.mode == "manual" and values(second) == plain.step("manual")["params"]


def test_a_stop_condition_added_during_a_step_is_checked_from_the_next_step():
    """Issue 13: a breakpoint added mid-step (the k screen during a run) is not checked against the
    step in progress, which began without it; the next step checks it. The numbers stay the
    plain loop's."""
    session, plain = Session(NOT_GATE), PlainLoop(NOT_GATE)
    session.step_phase()
    session.panel.add_condition("loss > 0")
    first = session.step()
    assert session.triggered(first) == [] and first.loss == plain.step()["loss"]
    second = session.step()
    assert [c.text for c in session.triggered(second)] == ["loss > 0"]
    assert second.loss == plain.step()["loss"]


def test_the_controls_are_one_frozen_value_replaced_whole():
    """Issue 13: a change replaces session.controls with a new frozen value and leaves the old one
    as it was (a step that read it keeps what it read); the stop conditions are an immutable tuple.
    The step after it matches a plain loop with the new learning rate."""
    session, plain = Session(NOT_GATE), PlainLoop(NOT_GATE)
    before = session.controls
    session.panel.set_lr(0.5)
    session.panel.add_condition("loss < 0.001")
    after = session.controls
    assert after is not before and before.lrs is None and before.conditions == ()
    assert after.lrs == (0.5,) and isinstance(after.conditions, tuple)
    with pytest.raises(dataclasses.FrozenInstanceError):
        after.mode = "manual"  # type: ignore[misc]
    plain.opt.param_groups[0]["lr"] = 0.5
    assert values(session.step()) == plain.step()["params"]


def test_set_controls_takes_a_whole_value_at_the_next_step():
    """Issue 13: set_controls(replace(...)) changes mode and learning rate in one assignment; the
    next step uses both, as a plain loop stepped in manual mode at that rate."""
    session, plain = Session(NOT_GATE), PlainLoop(NOT_GATE)
    assert values(session.step()) == plain.step()["params"]
    session.set_controls(dataclasses.replace(session.controls, mode="manual", lrs=(0.125,)))
    plain.opt.param_groups[0]["lr"] = 0.125
    record = session.step()
    assert record.mode == "manual" and record.lr == 0.125 and values(record) == plain.step("manual")["params"]


def test_abandon_step_rolls_a_step_in_progress_back():
    """Issue 13: the public mid_step / abandon_step (the trainer's rollback after Ctrl-C) put the
    session back at the start of the step; stepping on gives the plain loop's numbers."""
    session, plain = Session(NOT_GATE), PlainLoop(NOT_GATE)
    assert not session.mid_step
    session.step()
    plain.step()
    for _ in range(PHASES.index("update") + 1):
        session.step_phase()
    assert session.mid_step
    session.abandon_step()
    assert not session.mid_step and session.step_count == 1 and session.next_phase == "forward"
    for _ in range(2):
        assert values(session.step()) == plain.step()["params"]


def test_going_back_runs_steps_with_their_first_controls_and_keeps_the_users():
    """Issue 13: a rewind runs the steps after its checkpoint again with the controls they first
    had, not the user's, and leaves the user's controls value as it is; the next step uses the
    user's (manual), as a plain loop stepped optim then manual."""
    session, plain = Session(NOT_GATE, checkpoint_every=4), PlainLoop(NOT_GATE)
    for _ in range(3):
        session.step()
    session.panel.toggle_mode()
    mine = session.controls
    assert session.rewind(1) == 1
    assert session.controls is mine and session.mode == "manual" and session.last.mode == "optim"
    plain.step("optim")
    plain.step("optim")
    record = session.step()
    assert record.mode == "manual" and values(record) == plain.step("manual")["params"]


def test_the_runner_hands_the_step_its_plan():
    """Issue 13: Session.step takes the runner's frozen StepPlan as one argument; a headless run's
    light steps give the plain loop's losses."""
    session, plain = Session(NOT_GATE), PlainLoop(NOT_GATE)
    events = list(Run(session, 5, schedule=EveryStep(StepPlan(whole=False, defer=True)), conditions=False))
    losses = [e.record.loss for e in events if type(e).__name__ == "Stepped"]
    assert losses == [plain.step()["loss"] for _ in range(5)]
    assert isinstance(session.controls, Controls)


@pytest.mark.parametrize("every", [1, 2, 10])
def test_a_learning_rate_rewound_past_its_write_is_written_again(every):
    """Issue 13: the user's learning rate is written into the param groups once; a rewind past the
    step that wrote it takes the param groups back, and the rate is written again at the next
    update (it is a control, like the mode), as a plain loop that sets it before each step."""
    session, plain = Session(NOT_GATE, checkpoint_every=every), PlainLoop(NOT_GATE)
    session.step()
    session.panel.set_lr(0.5)
    for _ in range(3):
        session.step()
    assert session.rewind(3) == 3 and session.lr == 0.5
    plain.step()
    plain.opt.param_groups[0]["lr"] = 0.5
    for _ in range(3):
        record = session.step()
        assert record.lr == 0.5 and values(record) == plain.step()["params"]
