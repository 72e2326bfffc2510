"""The step-debugger says at the rewind when a scenario keeps state gdtui cannot restore (issue 12 case 29).

The expected loss in the message is the plain loop's (PlainLoop in tests/plain_loop.py), not a value the app produced.
"""

from __future__ import annotations

from gdtui.jobs import make_app
from gdtui.widgets.error_panel import ErrorPanel
from tests.paths import STATE
from tests.plain_loop import PlainLoop


async def settle(pilot) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    await pilot.pause()


async def test_a_rewind_that_cannot_be_exact_says_so_and_why():
    """Issue 12 case 29, on screen: carry_object.py keeps its RNN state in `carry`, an object of its own
    class. Three steps and `b`: the panel names `carry` at once; stepping again (or the replay of the
    rewind) gives step 3 (or 1) another loss than the first time, and the panel shows that loss."""
    path = STATE / "carry_object.py"
    plain = PlainLoop(path)
    plain.ns["model"](plain.ns["data"][0])  # gdtui's load check runs the model once more (README)
    want = [plain.step()["loss"] for _ in range(3)]
    app = make_app(path)
    async with app.run_test(size=(100, 30)) as pilot:
        await app.opened.wait()
        while app.busy:
            await settle(pilot)
        for key in ("space", "space", "space"):
            await pilot.press(key)
            await settle(pilot)
        assert [app.port.session.losses[i] for i in range(3)] == want
        await pilot.press("b")
        await settle(pilot)
        panel = app.query_one(ErrorPanel)
        shown = " ".join(str(panel.render()).split())
        assert panel.display and "gdtui does not snapshot carry (a Carry)" in shown
        if "ran again" not in shown:  # the rewind restored a checkpoint: the next step runs again
            await pilot.press("space")
            await settle(pilot)
            shown = " ".join(str(panel.render()).split())
        assert "ran again with loss" in shown and "gdtui does not snapshot carry (a Carry)" in shown
        assert any(f"not {loss!r} as the first time" in shown for loss in want)
        assert app.port.session.step_count in (2, 3)
        await pilot.press("q")
