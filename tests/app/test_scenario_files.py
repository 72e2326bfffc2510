"""How a scenario file is found and read: as Python reads it, from wherever the run started.

The step-debugger's half (it needs textual); the headless half is tests/engine/test_scenario_files.py.
"""

from __future__ import annotations

import os
import shutil

import pytest
from textual.widgets import Input

from gdtui.jobs import make_app
from gdtui.widgets.report_screen import ReportScreen
from tests.app.pilot_helpers import opened, press
from tests.paths import BAD
from tests.plain_loop import PlainLoop, read_trace


async def test_r_g_and_export_after_the_scenario_changed_directory(tmp_path, monkeypatch):
    """Issue 12 case 20, in the step-debugger: after the scenario's os.chdir, r resets, G checks and
    `e` writes where gdtui started, not into the scenario's folder. The export holds the plain
    loop's losses."""
    folder = tmp_path / "scenario"
    folder.mkdir()
    shutil.copy(BAD / "changes_directory.py", folder)
    monkeypatch.chdir(tmp_path)
    app = make_app("scenario/changes_directory.py")
    async with opened(app) as pilot:
        assert os.getcwd() == str(folder)
        await press(pilot, "r", "space", "space", "G")
        report = app.screen
        assert isinstance(report, ReportScreen) and report.error is None, getattr(report, "error", None)
        # after 2 steps x = 2.84 (5 - 0.1 * 12 = 3.8, then 3.8 - 0.1 * 9.6), so the loss is (x + 1)^2 = 3.84^2
        assert float(report.lines[0].split()[-1]) == pytest.approx(3.84**2, rel=1e-6)
        assert report.lines[1].split()[0] == "x" and report.lines[1].endswith("ok")
        await press(pilot, "escape", "e")
        app.screen.query_one(Input).value = "steps.jsonl"
        await press(pilot, "enter")
        await pilot.press("q")
    assert not (folder / "steps.jsonl").exists()
    steps = [x for x in read_trace(tmp_path / "steps.jsonl") if x["event"] == "step"]
    plain = PlainLoop(folder / "changes_directory.py")
    assert [s["loss"] for s in steps] == [plain.step()["loss"] for _ in range(2)]

