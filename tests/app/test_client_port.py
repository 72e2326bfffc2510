"""The step-debugger on a trainer process (gdtui.client_port): the app's default port.

Each test runs the app in a fresh interpreter, so that what that process imported can be read back.
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.paths import ROOT, SCENARIOS
from tests.plain_loop import PlainLoop

NOT_GATE = SCENARIOS / "not_gate.py"

APP = """
import asyncio, json, os, sys
from gdtui.app import make_app

async def main():
    app = make_app(sys.argv[1], flags=json.loads(sys.argv[2]))
    out = {}
    async with app.run_test(size=(80, 24)) as pilot:
        async def until(check, timeout=60.0):
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            while not check():
                assert loop.time() < deadline, "timed out"
                await pilot.pause(0.02)
        await until(lambda: app.state is not None and not app.busy)
        out["pid"] = app.port.pid
        for _ in range(3):
            await pilot.press("space")
        await until(lambda: app.state.step == 3 and not app.busy)
        out["losses"] = [app.state.last.loss]
        out["w"] = list(app.state.params["w"].values)
        await pilot.press("m", "l")
        await until(lambda: app.state.mode == "manual")
        await pilot.press("escape")
        await pilot.press("b")
        await until(lambda: app.state.step == 2 and not app.busy)
        out["rewound_w"] = list(app.state.params["w"].values)
        out["torch"] = "torch" in sys.modules
        await pilot.press("q")
    print(json.dumps(out))

asyncio.run(main())
"""


def run_app(flags: list[str]) -> dict:
    out = subprocess.run([sys.executable, "-c", APP, str(NOT_GATE), json.dumps(flags)], capture_output=True, text=True,
                         cwd=ROOT, timeout=180)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def flat(values) -> list[float]:
    return [float(v) for v in (flat_list(values))]


def flat_list(values):
    if isinstance(values, list):
        return [x for v in values for x in flat_list(v)]
    return [values]


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_the_app_steps_a_trainer_process_and_never_imports_torch():
    """Issue 13: the app's process opens a scenario and steps it through a trainer child, whose
    numbers are a plain loop's; torch is never imported in the app's process; q leaves no trainer."""
    out = run_app(["--seed", "0"])
    plain = PlainLoop(NOT_GATE)
    steps = [plain.step() for _ in range(3)]
    assert out["losses"] == [steps[2]["loss"]]
    assert flat(out["w"]) == flat(steps[2]["params"][0])
    assert flat(out["rewound_w"]) == flat(steps[1]["params"][0])  # b: exact rewind, in the trainer
    assert not out["torch"], "the app's process imported torch"
    assert out["pid"] is not None and not alive(out["pid"]), "the trainer outlived q"
