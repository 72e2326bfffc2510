"""Looking changes nothing: a trace from the app with every view and diagnostic visited equals
a headless trace of the same steps, bit for bit.

Reference: the headless run (gdtui --headless --trace), which opens no view and no
diagnostic, checked against a plain PyTorch loop in test_fidelity.py; and, for the
BatchNorm scenario, the running statistics of a plain loop written out here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gdtui.cli import main
from gdtui.engine.trace import TraceWriter
from gdtui.jobs import make_app
from gdtui.widgets.charts import LossChart
from tests.app.pilot_helpers import OWN, opened, press
from tests.plain_loop import PlainLoop, read_trace

STEPS = 4


async def look_at_everything(pilot) -> None:
    """Every chart view (back to the first), the detail, hints, diagnostics and help, each closed again."""
    app = pilot.app
    for _ in range(len(app.views)):
        await press(pilot, "v")
    for key in ("enter", "h", "G", "M", "o", "question_mark"):
        await press(pilot, key)
        if app.screen is not app.screen_stack[0]:
            await press(pilot, "escape")
        assert app.screen is app.screen_stack[0], key


def step_lines(path: Path) -> list[dict]:
    return [line for line in read_trace(path) if line["event"] == "step"]


@pytest.mark.parametrize("name", ["batchnorm_fit", "dropout_fit"])
async def test_a_trace_with_every_view_and_diagnostic_visited_equals_headless(name, tmp_path):
    """Issue 12 case 4: charts and diagnostics evaluate the model without changing the session
    (BatchNorm's running statistics, Dropout's draws from the RNG)."""
    path = OWN / f"{name}.py"
    headless = tmp_path / "headless.jsonl"
    assert main([str(path), "--headless", "--steps", str(STEPS), "--trace", str(headless), "--quiet"]) == 0
    looked = tmp_path / "looked.jsonl"
    trace = TraceWriter(looked)
    app = make_app(path, trace=trace)
    async with opened(app) as pilot:
        assert app.views == ("loss", "fit")
        await look_at_everything(pilot)
        await press(pilot, "space")
        await look_at_everything(pilot)
        await press(pilot, "s")  # in the middle of step 2, after its forward
        await look_at_everything(pilot)
        await press(pilot, "s", "s", "s", "s", "v")  # the model view stays up while stepping
        assert app.query_one(LossChart).frame.view == "fit"
        await press(pilot, "space", "space")
        await look_at_everything(pilot)
        assert app.port.session.step_count == STEPS and app.port.session.error is None
        await pilot.press("q")
    trace.close()
    assert step_lines(looked) == step_lines(headless)
    assert [s["step"] for s in step_lines(headless)] == list(range(1, STEPS + 1))


def test_the_batchnorm_metric_reads_the_plain_loops_running_statistics(tmp_path):
    """Issue 12 case 4: the reference trace is itself right: its eval-mode metric is a plain loop's."""
    path = OWN / "batchnorm_fit.py"
    trace = tmp_path / "t.jsonl"
    assert main([str(path), "--headless", "--steps", str(STEPS), "--trace", str(trace), "--quiet"]) == 0
    plain = PlainLoop(path)
    want = [plain.step("optim")["metrics"]["eval_mse"] for _ in range(STEPS)]
    assert [s["metrics"]["eval_mse"] for s in step_lines(trace)] == want
