"""The parameter table's grad column and the detail view show the gradient the engine chose.

Reference: a plain PyTorch loop over not_gate's own objects, run phase by phase
(tests.plain_loop.plain_points): the gradient it holds after each phase, and after zero_grad
the one its update just used. Once on the in-process app, once through the fake trainer (the
app's own port and the protocol's wire format) with a Session standing in for the trainer.
"""

from __future__ import annotations

from gdtui import protocol as p
from gdtui.engine import Session
from gdtui.engine.display import detail
from gdtui.engine.formatting import format_number
from gdtui.jobs import make_app
from gdtui.widgets.detail_screen import DetailScreen
from gdtui.widgets.param_table import ParamTable
from tests.app.fake_trainer import FakeTrainer, fake_app
from tests.app.pilot_helpers import NOT_GATE, SIZE, opened, settle, until
from tests.plain_loop import plain_points


def grad_cell(want) -> str:
    """The 80-column grad cell of a one-element tensor's gradient (not_gate's w and b are 1x1)."""
    return "—" if want is None else format_number(want[0][0], 4)


async def check_shown(pilot, want: list, label: str, wait) -> None:
    """The table's grad cells and each tensor's detail view show ``want`` (w, b), and the detail
    view names the gradient ``label``."""
    app = pilot.app
    table = app.query_one(ParamTable)
    assert [str(table.get_cell(name, "grad")) for name in ("w", "b")] == [grad_cell(g) for g in want]
    for row, name in enumerate(("w", "b")):
        table.move_cursor(row=row)
        await pilot.press("enter")
        await wait(lambda: isinstance(app.screen, DetailScreen))
        data = app.screen.data
        assert data.name == name and (None if data.grad is None else data.grad.values) == want[row]
        assert data.grad_of == label
        assert f"grad ({label})" in " ".join(str(s.render()) for s in app.screen.query("Static"))
        await pilot.press("escape")
        await wait(lambda: not isinstance(app.screen, DetailScreen))


def label(step: int, phase: str) -> str:
    if phase == "start":
        return "now"
    return f"used by step {step}'s update" if phase == "zero_grad" else f"now, after {phase}"


async def test_the_in_process_app_shows_the_plain_loops_gradient_at_each_phase_and_after_a_rewind():
    """Issue 13: in the in-process app, after each phase of two steps (s) and after a rewind (b) from
    step 2 to step 1, the grad column and the detail view of w and b show the plain loop's gradient
    there: the live one mid-step, the one the update used once a step is over."""
    points = plain_points(NOT_GATE, 2)
    app = make_app(NOT_GATE)

    async def wait(condition) -> None:
        await settle(pilot)
        await until(pilot, condition)

    async with opened(app, SIZE) as pilot:
        app.query_one(ParamTable).focus()
        for i, (step, phase, want) in enumerate(points):
            if i:
                await pilot.press("s")
                await settle(pilot)
            assert app.state.step == step
            await check_shown(pilot, want, label(step, phase), wait)
        await pilot.press("b")
        await settle(pilot)
        assert app.state.step == 1
        await check_shown(pilot, points[5][2], "used by step 1's update", wait)


async def test_through_the_fake_trainer_the_screen_shows_the_plain_loops_gradient_at_each_phase():
    """Issue 13: a Session stands in for the trainer behind the fake trainer, so every state reaches
    the screen through the wire format: after each phase of two steps and after a rewind from step 2
    to step 1, the grad column and the detail view show the plain loop's gradient."""
    session = Session(NOT_GATE)

    def frame() -> tuple:
        return (p.Frame(p.for_screen(session.state())),)

    def answer(command):
        if isinstance(command, p.Phase):
            session.step_phase()
            return frame()
        if isinstance(command, p.Rewind):
            session.rewind(command.n)
            return frame()
        if isinstance(command, p.Detail):
            return (p.DetailData(command.name, *detail(session, command.name)),)
        return ()

    points = plain_points(NOT_GATE, 2)
    trainer = FakeTrainer(p.for_screen(session.state()), answer)
    app = fake_app(trainer)
    async with app.run_test(size=SIZE) as pilot:

        async def wait(condition) -> None:
            await until(pilot, lambda: condition() and not app.busy)

        await wait(lambda: app.state is not None)
        app.query_one(ParamTable).focus()
        for i, (step, phase, want) in enumerate(points):
            if i:
                await pilot.press("s")
                await wait(lambda: app.state.next_phase != phase)  # noqa: B023 (read at once)
            assert app.state.step == step
            await check_shown(pilot, want, label(step, phase), wait)
        await pilot.press("b")
        await wait(lambda: app.state.step == 1)
        await check_shown(pilot, points[5][2], "used by step 1's update", wait)
        await pilot.press("q")
