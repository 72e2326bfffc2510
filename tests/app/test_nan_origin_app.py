"""The step-debugger names where a NaN/Inf began (issue 14): the error panel's notice and the hints.

The screen's half of tests/engine/test_nan_origin.py, on the same scenario: layer 3 (body.3,
Divide) divides by a buffer that reaches 0 at step 5, where the plain loop's loss first goes NaN.
"""

from __future__ import annotations

import math

from gdtui.jobs import make_app
from tests.app.pilot_helpers import opened, panel_text, press, until
from tests.paths import DIAG
from tests.plain_loop import PlainLoop

DIVIDE = DIAG / "divide_by_zero.py"
NOTICE = ("loss went non-finite (NaN or Inf) at step 5, first in the output of module body.3 (Divide); "
          "b rewinds, - lowers the lr")


def plain_first_nan_step() -> int:
    plain = PlainLoop(DIVIDE)
    return next(k for k in range(1, 20) if not math.isfinite(plain.step()["loss"]))


async def test_stepping_into_the_nan_names_layer_3():
    """Issue 14: space five times; the run pauses at step 5 (the plain loop's first NaN loss) and the
    panel names body.3 (Divide), as the headless stop line does; the hint says it too."""
    assert plain_first_nan_step() == 5
    app = make_app(DIVIDE)
    async with opened(app) as pilot:
        await press(pilot, *["space"] * 5)
        assert app.port.session.step_count == 5
        assert NOTICE in panel_text(app)
        hints = [h.message for h in app.state.hints]
        assert hints[0] == "loss went NaN/Inf at step 5; it began in the output of module body.3 (Divide)"
        await pilot.press("q")


async def test_a_continuous_run_stops_at_step_5_and_names_layer_3():
    """Issue 14: c runs (its steps between frames leave their checks to later); it stops at step 5 with
    the same notice as stepping by hand."""
    app = make_app(DIVIDE)
    async with opened(app) as pilot:
        await pilot.press("c")
        await until(pilot, lambda: not app.busy and app.port.session.step_count >= 5)
        await press(pilot)
        assert app.port.session.step_count == 5
        assert NOTICE in panel_text(app)
        await pilot.press("q")
