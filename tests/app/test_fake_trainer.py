"""The screen on a fake trainer (tests/app/fake_trainer.py): hand-made events, no torch.

The app runs on its own port (gdtui.client_port.ClientPort), which reads the fake trainer's events
as it reads a trainer process's; every number shown is one the test made, not one gdtui computed.
The last test runs the app in a fresh interpreter to show that none of this imports torch.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys

from gdtui import protocol as p
from gdtui.widgets.error_panel import ErrorPanel
from gdtui.widgets.param_table import ParamTable
from gdtui.widgets.status_line import StatusLine
from tests.app.fake_trainer import FakeTrainer, answer_steps, fake_app, state
from tests.app.pilot_helpers import SIZE, text, until
from tests.paths import ROOT


def row(app, name: str) -> str:
    return " ".join(str(cell) for cell in app.query_one(ParamTable).get_row(name))


async def test_the_parameter_table_shows_the_records_a_trainer_sends():
    """Issue 13: the parameter table and the status line show a trainer's hand-made records, through
    the app's own port and the protocol's wire format: w and b at load, then after step 1."""
    start = state(params={"w": [1.5, -2.0], "b": [0.125]})
    after = state(1, loss=0.6875, params={"w": [1.375, -1.75], "b": [0.0625]}, grads={"w": [0.5, -1.0], "b": [0.25]})
    trainer = FakeTrainer(start, answer_steps(start, {1: after}))
    app = fake_app(trainer)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.state is not None and not app.busy)
        # w = [1.5, -2]: mean -0.25, population std 1.75 (a summary, as for any tensor of more than one)
        assert "w (2,) μ-0.25 σ1.75" in row(app, "w") and "b (1,) 0.125" in row(app, "b")
        await pilot.press("space")
        await until(pilot, lambda: app.state.step == 1 and not app.busy)
        assert trainer.sent[-1] == p.Step(1, records=False)  # the screen draws frames, not per-step records
        # w = [1.375, -1.75]: mean -0.1875, std 1.5625; its gradient [0.5, -1] has norm √1.25 = 1.118
        assert "μ-0.188 σ1.56 ‖1.12‖" in row(app, "w")
        assert row(app, "b").startswith("b (1,) 0.0625 0.25")
        assert "step 1" in text(app, StatusLine) and "0.6875" in text(app, StatusLine)
        await pilot.press("q")
    assert isinstance(trainer.sent[-1], p.Quit)


async def test_the_error_panel_says_the_trainer_was_killed_by_a_signal_with_its_last_lines():
    """Issue 13: a trainer killed by SIGSEGV in a step: the screen stays, the panel names the signal
    and shows its last output lines, the status line showed its last printed line, and r starts a new
    trainer."""
    start = state(params={"w": [1.5]})
    first = FakeTrainer(start, lambda command: None if isinstance(command, p.Step) else ())
    second = FakeTrainer(start, pid=4343)
    app = fake_app(first, second)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.state is not None and not app.busy)
        await pilot.press("space")
        first.emit(p.Output(((1, "epoch 1: loading the batch"), (1, "calling the C extension"))))
        await until(pilot, lambda: "calling the C extension" in text(app, StatusLine))
        first.die(signal=signal.SIGSEGV, last_lines=("epoch 1: loading the batch", "calling the C extension"))
        await until(pilot, lambda: app.ended is not None and not app.busy)
        panel = text(app, ErrorPanel)
        assert "the trainer was killed by SIGSEGV (signal 11)" in panel
        assert "epoch 1: loading the batch" in panel and "calling the C extension" in panel
        assert app.is_running and app.state is None
        await pilot.press("r")
        await until(pilot, lambda: app.state is not None and not app.busy)
        assert app.port.started == [first, second] and app.port.pid == 4343
        assert "killed" not in text(app, ErrorPanel) and "1.5" in row(app, "w")


async def test_the_status_line_shows_a_gradient_checks_progress():
    """Issue 13: G sends GradientCheck; the trainer's Progress events show in the status line (tensor
    k of n, its name) until the check's report and Done end it."""
    start = state(params={"w": [1.5], "b": [0.5]})
    trainer = FakeTrainer(start, lambda command: None if isinstance(command, p.GradientCheck) else ())
    app = fake_app(trainer)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.state is not None and not app.busy)
        await pilot.press("G")
        await until(pilot, lambda: trainer.sent and trainer.sent[-1] == p.GradientCheck())
        trainer.emit(p.Progress(1, 2, "w"))
        await until(pilot, lambda: "tensor 1 of 2 (w)" in text(app, StatusLine))
        trainer.emit(p.Progress(2, 2, "b"))
        await until(pilot, lambda: "tensor 2 of 2 (b)" in text(app, StatusLine))
        assert app.busy
        trainer.emit(p.Report("gradient_check", ("w  ok", "b  ok")), p.Done("gradient_check"))
        await until(pilot, lambda: not app.busy)
        assert "tensor 2 of 2" not in text(app, StatusLine)


SCRIPT = """
import asyncio, json, sys
from tests.app.fake_trainer import FakeTrainer, answer_steps, fake_app, state

async def main():
    start = state(params={"w": [1.5]})
    trainer = FakeTrainer(start, answer_steps(start, {1: state(1, loss=0.5, params={"w": [2.25]})}))
    app = fake_app(trainer)
    async with app.run_test(size=(80, 24)) as pilot:
        async def until(check):
            for _ in range(500):
                if check():
                    return
                await pilot.pause(0.02)
            raise AssertionError("timed out")
        await until(lambda: app.state is not None and not app.busy)
        await pilot.press("space")
        await until(lambda: app.state.step == 1 and not app.busy)
        shown = " ".join(str(c) for c in app.query_one("ParamTable").get_row("w"))
        await pilot.press("q")
    print(json.dumps({"shown": shown, "imported": [m for m in ("torch", "numpy") if m in sys.modules]}))

asyncio.run(main())
"""


def test_the_screen_on_a_fake_trainer_runs_without_torch():
    """Issue 13: the app on a fake trainer opens, steps and shows w = 2.25 in a fresh interpreter that
    never imports torch or numpy: widgets can be tested with no torch at all."""
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.splitlines()[-1])
    assert result["imported"] == []
    assert "2.25" in result["shown"]
