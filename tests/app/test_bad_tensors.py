"""Tensors gdtui cannot step: sparse gradients, complex numbers, the meta device (issue 12 cases 7, 13 and 14).

Each is one line naming the file, the line and the fix, exit status 2, before any
step where the load can tell; in the step-debugger the line shows in the panel
and the app stays open. References: a plain loop over the scenario's own objects.

The step-debugger's half (it needs textual); the headless half is tests/engine/test_bad_tensors.py.
"""

from __future__ import annotations

import shutil

import pytest

from gdtui.jobs import make_app
from tests.app.pilot_helpers import opened, panel_text, press, status
from tests.bad_cases import BAD_TENSORS_AT_LOAD as AT_LOAD
from tests.paths import BAD, SCENARIOS
from tests.plain_loop import PlainLoop


@pytest.mark.parametrize(("name", "line", "words"), AT_LOAD[:3], ids=[c[0] for c in AT_LOAD[:3]])
async def test_the_step_debugger_shows_the_line_and_loads_again_once_fixed(name, line, words, tmp_path):
    """Issue 12 cases 7 and 13: a sparse model showed "step running…" forever; a complex loss left a traceback."""
    path = tmp_path / name
    shutil.copy(BAD / name, path)
    app = make_app(path)
    async with opened(app) as pilot:
        shown = panel_text(app)
        assert f"{path}:{line}: " in shown and words in shown and "Traceback" not in shown
        assert app.port.session is None and app.is_running
        shutil.copy(SCENARIOS / "not_gate.py", path)  # the user fixes the file
        await press(pilot, "r", "space")
        assert "step 1" in status(app) and panel_text(app) == ""
        assert app.state.loss == pytest.approx(PlainLoop(SCENARIOS / "not_gate.py").step()["loss"], rel=1e-6)


async def test_a_meta_batch_in_the_step_debugger_is_shown_and_the_session_stays_usable():
    """Issue 12 case 14: the meta batch of step 2 is the panel's line; step 1 stands and reset works."""
    path = BAD / "meta_batches.py"
    app = make_app(path)
    async with opened(app) as pilot:
        await press(pilot, "space", "space")
        assert "step 2: data yielded a batch on the meta device" in panel_text(app)
        assert app.port.session.step_count == 1 and app.is_running
        assert app.state.loss == pytest.approx(PlainLoop(path).step()["loss"], rel=1e-6)
        await press(pilot, "r", "space")
        assert app.port.session.step_count == 1 and panel_text(app) == ""

