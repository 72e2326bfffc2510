"""Driving the step-debugger with Pilot: wait for the worker and the screen, press keys, read widgets.

The app tests share these. A plain helper module (not a test module): tests import it as
``tests.app.pilot_helpers``.
"""

from __future__ import annotations

import contextlib

from gdtui.widgets.error_panel import ErrorPanel
from gdtui.widgets.param_table import ParamTable
from gdtui.widgets.status_line import StatusLine
from tests.paths import OWN, ROOT, SCENARIOS

__all__ = ["NOT_GATE", "OWN", "ROOT", "SCENARIOS", "SIZE", "opened", "panel_text", "press", "settle", "status", "table_text",
           "text", "until", "until_open"]

NOT_GATE = SCENARIOS / "not_gate.py"
SIZE = (80, 24)


async def settle(pilot) -> None:
    """Wait for the worker, then for the screen (and the chart, one frame later)."""
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    await pilot.pause()


async def until_open(pilot) -> None:
    """Wait for the worker to open the scenario (or fail to), draw the first chart, and the screen to show it."""
    await pilot.app.opened.wait()
    while pilot.app.busy:  # the first chart is drawn in the worker too
        await settle(pilot)
    await settle(pilot)


@contextlib.asynccontextmanager
async def opened(app, size=SIZE):
    """The app at ``size``, once it is open (see until_open)."""
    async with app.run_test(size=size) as pilot:
        await until_open(pilot)
        yield pilot


async def press(pilot, *keys: str) -> None:
    for key in keys:
        await pilot.press(key)
        await settle(pilot)


async def until(pilot, condition, timeout: float = 10.0) -> None:
    """Let the app run until ``condition()`` holds (run mode), failing after ``timeout`` seconds."""
    for _ in range(int(timeout / 0.02)):
        if condition():
            return
        await pilot.pause(0.02)
    raise AssertionError("the app did not get there in time")


def text(app, widget_type) -> str:
    return str(app.query_one(widget_type).render())


def table_text(app) -> str:
    table = app.query_one(ParamTable)
    return "\n".join(" ".join(str(c) for c in table.get_row(name)) for name in table.names)


def status(app) -> str:
    return text(app, StatusLine)


def panel_text(app) -> str:
    panel = app.query_one(ErrorPanel)
    return str(panel.render()) if panel.display else ""
