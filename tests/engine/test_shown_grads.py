"""The gradient the screen shows is decided by the engine, once, in the state it builds.

Reference: a plain PyTorch loop over the scenario's own objects, run phase by phase. At each
phase boundary the expected gradient is the one the plain loop holds there, except after
zero_grad, where it is the one the plain loop's update just used (the live one is gone).
"""

from __future__ import annotations

import pytest
import torch

from gdtui import protocol as p
from gdtui.engine import Session
from gdtui.engine.display import detail
from tests.paths import OWN, SCENARIOS
from tests.plain_loop import plain_points

NOT_GATE = SCENARIOS / "not_gate.py"


def shown(state) -> list:
    return [None if v is None else v.values for v in state.shown_grads.views.values()]


def test_the_state_shows_the_plain_loops_gradient_after_each_phase():
    """Issue 13: SessionState.shown_grads after each phase of three steps (forward, loss, backward,
    update, zero_grad) is the plain loop's gradient there: the live one mid-step, the one the update
    used once the step is over; its label says which. The same numbers come through the wire."""
    session = Session(NOT_GATE)
    points = plain_points(NOT_GATE, 3)
    assert shown(session.state()) == points[0][2] == [None, None]
    assert session.state().shown_grads.label == "now"
    for step, phase, want in points[1:]:
        assert session.next_phase == phase
        session.step_phase()
        state = session.state()
        assert session.step_count == step
        assert shown(state) == want, (step, phase)
        if phase == "zero_grad":
            assert state.shown_grads.used and state.shown_grads.label == f"used by step {step}'s update"
        else:
            assert not state.shown_grads.used and state.shown_grads.label == f"now, after {phase}"
        back = p.loads(p.dumps(p.Frame(p.for_screen(state)))).state
        assert shown(back) == want and back.shown_grads.label == state.shown_grads.label


def test_after_a_rewind_the_state_shows_the_gradient_that_steps_update_used():
    """Issue 13: after three steps and a rewind of one, the gradient shown is the one the plain loop's
    step 2 update used; rewound to the start, there is none."""
    session = Session(NOT_GATE)
    used = [want for _, phase, want in plain_points(NOT_GATE, 3) if phase == "zero_grad"]
    for _ in range(3):
        session.step()
    assert shown(session.state()) == used[2]
    assert session.rewind(1) == 1 and session.step_count == 2
    state = session.state()
    assert shown(state) == used[1] and state.shown_grads.label == "used by step 2's update"
    session.rewind(2)
    assert shown(session.state()) == [None, None]


@pytest.mark.parametrize("phases", range(11))  # the start, then 5 phases a step
def test_the_detail_of_a_tensor_shows_the_gradient_the_table_shows(phases):
    """Issue 13: display.detail (the detail view's data) gives, after each phase of two steps, the plain
    loop's gradient for w and b, with the state's label."""
    session = Session(NOT_GATE)
    _, _, want = plain_points(NOT_GATE, 2)[phases]
    for _ in range(phases):
        session.step_phase()
    label = session.state().shown_grads.label
    for i, name in enumerate(session.loop.names):
        _, grad, _, _, grad_of = detail(session, name)
        assert (None if grad is None else grad.values) == want[i] and grad_of == label


def test_each_frame_of_a_run_carries_the_state_with_the_gradient_to_show():
    """Issue 13: the runner's Frame carries the state a screen shows (a consumer builds none): in a run
    of three steps, each shown, frame k's state is at step k and shows the gradient the plain loop's
    step k update used."""
    from gdtui.engine.runner import EveryStep, Frame, Run, StepPlan

    session = Session(NOT_GATE)
    used = [want for _, phase, want in plain_points(NOT_GATE, 3) if phase == "zero_grad"]
    frames = [e for e in Run(session, 3, schedule=EveryStep(StepPlan(show=True))) if type(e) is Frame]
    assert [f.state.step for f in frames] == [f.record.step for f in frames] == [1, 2, 3]
    assert [shown(f.state) for f in frames] == used
    assert all(f.state.shown_grads.label == f"used by step {f.record.step}'s update" for f in frames)


def plain_counts(values: list, bins: int = 30) -> list[int]:
    """Counts in ``bins`` equal bins from the smallest value to the largest, by torch.histc in float64."""
    g = torch.tensor(values, dtype=torch.float64).reshape(-1)
    return [int(c) for c in torch.histc(g, bins=bins, min=g.min().item(), max=g.max().item())]


def test_the_detail_histogram_of_a_large_gradient_is_the_one_shown_at_each_phase():
    """Issue 13: a 100x100 weight (its views hold statistics only): the detail view's gradient
    histogram after backward and after update (the live gradient) and after zero_grad (the one the
    update used) has the counts of the plain loop's gradient there, in two steps; before backward
    there is none."""
    path = OWN / "large_linear.py"
    session = Session(path)
    for step, phase, want in plain_points(path, 2)[1:]:
        session.step_phase()
        value, grad, _, grad_hist, grad_of = detail(session, "weight")
        assert grad_of == session.state().shown_grads.label
        if want[0] is None:
            assert grad is None and grad_hist is None, (step, phase)
            continue
        assert grad.flat is None and grad.numel == 100 * 100
        assert list(grad_hist.counts) == plain_counts(want[0]), (step, phase)
