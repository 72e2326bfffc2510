"""Where a trace or an export is written: never over the scenario or a device, atomically, with
the user's file mode, and a trace that a full disk stops ends on a whole line.

Numbers are checked against tests/plain_loop.py's PlainLoop; file modes against the umask set in the test.

The step-debugger's half (it needs textual); the headless half is tests/engine/test_targets.py.
"""

from __future__ import annotations

import csv

from gdtui.engine import TraceWriter
from gdtui.jobs import make_app
from gdtui.widgets.error_panel import ErrorPanel
from gdtui.widgets.export_prompt import ExportPrompt
from tests.app.pilot_helpers import opened, press
from tests.paths import SCENARIOS
from tests.plain_loop import PlainLoop

NOT_GATE = SCENARIOS / "not_gate.py"


async def test_the_export_prompt_asks_before_replacing_and_refuses_the_scenario(scenario, tmp_path):
    """Issue 12 case 2 (TUI): `e` and the open scenario's path replaced the scenario with JSON, and an
    existing file was replaced without asking. The scenario is refused in the prompt (by a relative
    path too); an existing file is replaced only on a second enter, with the plain loop's losses."""
    before = scenario.read_bytes()
    existing = tmp_path / "old.csv"
    existing.write_text("precious\n")
    plain = PlainLoop(NOT_GATE)
    losses = [plain.step()["loss"] for _ in range(2)]
    app = make_app(scenario)
    async with opened(app) as pilot:
        app.start_dir = str(tmp_path)  # as if gdtui started in the scenario's folder
        await press(pilot, "space", "space", "e")
        for path in (str(scenario), "s.py"):
            app.screen.query_one("#export-input").value = path
            await press(pilot, "enter")
            assert isinstance(app.screen, ExportPrompt)
            why = str(app.screen.query_one("#export-why").render())
            assert f"{path} is the open scenario" in why
        assert scenario.read_bytes() == before
        app.screen.query_one("#export-input").value = "old.csv"
        await press(pilot, "enter")
        assert isinstance(app.screen, ExportPrompt)
        assert "old.csv exists: enter again to replace it" in str(app.screen.query_one("#export-why").render())
        assert existing.read_text() == "precious\n"
        await press(pilot, "enter")
        assert not isinstance(app.screen, ExportPrompt)
        assert "wrote 2 steps to" in str(app.query_one(ErrorPanel).render())
        rows = list(csv.DictReader(existing.open()))
        assert [float(r["loss"]) for r in rows] == losses
        await press(pilot, "e")  # escape after the question leaves the file as it is
        app.screen.query_one("#export-input").value = "old.csv"
        await press(pilot, "enter", "escape")
        assert not isinstance(app.screen, ExportPrompt) and len(list(csv.DictReader(existing.open()))) == 2
        await pilot.press("q")
    assert scenario.read_bytes() == before


async def test_an_export_over_a_csv_trace_being_written_is_refused_and_the_run_kept(tmp_path):
    """Issue 12 cases 1-2 (TUI): with --trace run.csv the export reads a temporary log, and `e` onto
    run.csv replaced it, so the steps after the export went to an unlinked file and were lost. It
    is refused in one line; after 2 + 3 steps run.csv holds the plain loop's 5 losses."""
    trace_path = tmp_path / "run.csv"
    app = make_app(NOT_GATE, trace=TraceWriter(trace_path))
    async with opened(app) as pilot:
        app.start_dir = str(tmp_path)
        await press(pilot, "space", "space", "e")
        app.screen.query_one("#export-input").value = "run.csv"
        await press(pilot, "enter")
        if isinstance(app.screen, ExportPrompt):  # asked to confirm replacing an existing file
            await press(pilot, "enter")
        if isinstance(app.screen, ExportPrompt):  # refused in the prompt
            assert "run.csv" in str(app.screen.query_one("#export-why").render())
            await press(pilot, "escape")
        else:
            assert "the trace being written" in str(app.query_one(ErrorPanel).render())
        await press(pilot, "space", "space", "space")
        await pilot.press("q")
    plain = PlainLoop(NOT_GATE)
    rows = list(csv.DictReader(trace_path.open()))
    assert [float(r["loss"]) for r in rows] == [plain.step()["loss"] for _ in range(5)]


async def test_the_step_debugger_says_in_one_line_that_the_trace_stopped(tmp_path):
    """Issue 12 case 16 (TUI): a --trace that could not be written showed "gdtui: OSError" and a ‖nan‖
    step. The steps are the plain loop's, and the panel says in one line why the trace stopped."""
    trace = TraceWriter("/dev/full", label="--trace /dev/full")
    plain = PlainLoop(NOT_GATE)
    losses = [plain.step()["loss"] for _ in range(2)]
    app = make_app(NOT_GATE, trace=trace)
    async with opened(app) as pilot:
        await press(pilot, "space")
        panel = str(app.query_one(ErrorPanel).render())
        assert "--trace /dev/full: cannot write it (No space left on device)" in panel and "OSError" not in panel
        assert list(app.port.session.losses) == losses[:1]
        await press(pilot, "space")
        assert list(app.port.session.losses) == losses and "OSError" not in str(app.query_one(ErrorPanel).render())
        await pilot.press("q")

