"""Screenshots of the step-debugger at 80x24, textual-dark theme, compared with accepted SVGs.

Regenerate with ``pytest tests/test_snapshots.py --snapshot-update`` and look at
the SVGs in __snapshots__ before committing them. The scenarios are opened by
paths relative to the repository root, so the error panel's path is the same
on every machine; the numbers on screen come from the engine's fixed-format
stringifiers.
"""

from __future__ import annotations

import pytest

from gdtui.jobs import make_app
from tests.app.pilot_helpers import until_open
from tests.paths import ROOT

SIZE = (80, 24)


@pytest.fixture(autouse=True)
def _from_the_repository_root(monkeypatch):
    monkeypatch.chdir(ROOT)


def app_for(path: str):
    app = make_app(path)
    app.theme = "textual-dark"
    return app


async def footer_settled(pilot) -> None:
    """Wait until the footer dims exactly the keys the app refuses. Textual's footer recomposes
    after a refresh, and a change of keys during an earlier recompose can be drawn late; the
    snapshot is of the settled screen."""
    from textual.widgets._footer import FooterKey

    app = pilot.app
    for _ in range(40):
        await pilot.pause(0.05)
        shown = [(item.action, not item.has_class("-disabled")) for item in app.query(FooterKey)]
        if all(bool(app.check_action(action, ())) == enabled for action, enabled in shown):
            return
        app.screen.refresh_bindings()


def keys(*presses: str):
    """A run_before that presses keys one at a time, each after the last one's step has finished."""

    async def run(pilot) -> None:
        await until_open(pilot)
        await footer_settled(pilot)
        for key in presses:
            await pilot.press(key)
            await pilot.app.workers.wait_for_complete()
            await pilot.pause()
        await pilot.pause()
        await pilot.pause()

    return run


def test_first_frame(snap_compare):
    assert snap_compare(app_for("scenarios/not_gate.py"), terminal_size=SIZE, run_before=keys())


def test_after_three_steps(snap_compare):
    assert snap_compare(app_for("scenarios/not_gate.py"), terminal_size=SIZE, run_before=keys("space", "space", "space"))


def test_model_view(snap_compare):
    assert snap_compare(app_for("scenarios/linear_regression.py"), terminal_size=SIZE,
                        run_before=keys("space", "space", "v"))


def test_loss_landscape_view(snap_compare):
    assert snap_compare(app_for("scenarios/quadratic.py"), terminal_size=SIZE,
                        run_before=keys("space", "space", "space", "space", "v"))


def test_mid_step_in_manual_mode(snap_compare):
    assert snap_compare(app_for("scenarios/not_gate.py"), terminal_size=SIZE,
                        run_before=keys("space", "m", "s", "s", "s"))


def test_error_panel(snap_compare):
    assert snap_compare(app_for("tests/tui_scenarios/raises_at_step_3.py"), terminal_size=SIZE,
                        run_before=keys("space", "space", "space"))


def test_help(snap_compare):
    assert snap_compare(app_for("scenarios/not_gate.py"), terminal_size=SIZE, run_before=keys("question_mark"))


def test_gradient_check(snap_compare):
    assert snap_compare(app_for("scenarios/fit_2x.py"), terminal_size=SIZE, run_before=keys("G"))


def test_a_scenario_that_does_not_load(snap_compare):
    assert snap_compare(app_for("tests/bad_scenarios/syntax_error.py"), terminal_size=SIZE, run_before=keys())
