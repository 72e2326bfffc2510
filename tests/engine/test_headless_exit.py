"""How a headless run ends when the scenario leaves something running."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.paths import BAD, ROOT
from tests.plain_loop import read_trace


def test_a_scenario_thread_that_never_ends_does_not_hang_the_run(tmp_path):
    """Issue 12 case 9: a scenario that starts a non-daemon thread hung the headless run at exit.
    The run ends with its own status, its trace whole, and one line saying the thread was left."""
    trace = tmp_path / "t.jsonl"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "gdtui", str(BAD / "starts_thread.py"), "--headless", "--steps", "2",
                           "--trace", str(trace)], capture_output=True, text=True, timeout=60, env=env, check=False)
    assert done.returncode == 0, done.stderr
    # the plain loop of the file: w = 0, loss (w - 3)², SGD lr 0.25: w 1.5, then 2.25
    assert done.stdout.splitlines() == ["step    1  loss 9  w [1.5]", "step    2  loss 2.25  w [2.25]"]
    assert done.stderr.splitlines() == [
        "gdtui: the scenario's thread poller still ran 2 s after the run; left running, exiting with status 0"
    ]
    assert read_trace(trace)[-1] == {"event": "end", "steps": 2, "reason": "steps"}
