"""The installed gdtui in a real terminal: tmux at 80x24, keys sent, the screen read back."""

from __future__ import annotations

import re
import time

import pytest

from tests.plain_loop import read_trace
from tests.tmux_driver import TmuxApp, have_tmux

pytestmark = pytest.mark.skipif(not have_tmux(), reason="tmux is not installed (apt-get install -y tmux)")


def test_five_steps_in_a_real_terminal_show_the_notebook_numbers_and_quit_restores():
    with TmuxApp("scenarios/not_gate.py") as app:
        app.start()
        app.wait_for(r"step 0 ")
        app.send("Space")
        app.wait_for(r"step 1 ")
        app.send("Space", "Space", "Space")  # at once: the presses that find a step running wait their turn
        app.wait_for(r"step 4 ")
        app.send("Space")
        app.wait_for(r"step 5 ")
        screen = app.wait_for(r"1\.7689")
        assert "2.2432" in screen and "1.7689" in screen  # the notebook's w and b after 5 iterations
        assert "loss 0.49559" in screen
        app.send("b")
        app.wait_for(r"step 4 ")
        app.send("q")
        deadline = time.perf_counter() + 10
        while not app.exited():
            assert time.perf_counter() < deadline, app.screen()
            time.sleep(0.05)
        assert "step 4" not in app.screen()  # the alternate screen is gone: the terminal is back


def test_no_color_keeps_the_highlights_visible():
    with TmuxApp("scenarios/not_gate.py", env={"NO_COLOR": "1"}) as app:
        app.start()
        app.wait_for(r"step 0 ")
        app.send("Space")
        app.wait_for(r"step 1 [\s\S]*2\.8265")
        lines = app.screen(escapes=True).splitlines()
        marked = next(line for line in lines if "▶" in line)
        assert {"1", "7"} <= sgr_params(marked)  # the next line: bold and reverse, no colour needed
        changed = next(line for line in lines if "2.8265" in line)
        assert {"1", "4"} <= sgr_params(changed)  # the changed value: bold and underlined


def sgr_params(line: str) -> set[str]:
    """Every SGR parameter in ``line``'s escape sequences, e.g. {'1', '7', '38', '5', '253'}."""
    return {p for seq in re.findall(r"\x1b\[([\d;]*)m", line) for p in seq.split(";")}


def test_a_blocked_step_keeps_the_screen_live_and_q_quits_at_once(tmp_path):
    trace = tmp_path / "trace.jsonl"
    with TmuxApp("tests/tui_scenarios/blocking_step.py", "--trace", str(trace)) as app:
        app.start()
        app.wait_for(r"step 0 ")
        app.send("Space")
        app.wait_for(r"step 1 ")
        app.send("Space")  # step 2's forward sleeps 30 s
        app.wait_for(r"step running")
        app.send("?")
        app.wait_for(r"Help|help")  # the screen still answers keys
        app.send("Escape")
        time.sleep(0.5)  # a lone Escape is told apart from Alt+key by a pause
        started = time.perf_counter()
        app.send("q")
        while not app.exited():
            assert time.perf_counter() - started < 10, app.screen()
            time.sleep(0.05)
    # valid JSON Lines up to the last finished step; the blocked step 2 never finished
    events = read_trace(trace)
    assert [e["event"] for e in events] == ["start", "step", "end"]
    assert events[1]["step"] == 1 and events[-1] == {"event": "end", "steps": 1, "reason": "interrupted"}
