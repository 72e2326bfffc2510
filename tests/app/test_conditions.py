"""Stop conditions that cannot freeze gdtui: bounded evaluation, checked calls, bounded size (issue 12 cases 6 and 26).

The hangs are tested in a child process (headless) or a real terminal (tmux):
on a gdtui that hangs, the test fails on its timeout instead of hanging itself.
References: the plain loop of tests/plain_loop.py, and Python's own float arithmetic.

The step-debugger's half (it needs textual); the headless half is tests/engine/test_conditions.py.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from gdtui.cli import build_parser, configure
from gdtui.jobs import make_app
from tests.app.pilot_helpers import opened, press
from tests.paths import SCENARIOS
from tests.plain_loop import plain_losses, read_trace
from tests.tmux_driver import TmuxApp, have_tmux

FIT_2X = SCENARIOS / "fit_2x.py"


async def test_the_breakpoint_prompt_refuses_a_wrong_call_in_one_line():
    """Issue 12 case 6: `sqrt()` typed at `k` was added, and never fired."""
    app = make_app(SCENARIOS / "not_gate.py")
    async with opened(app) as pilot:
        await press(pilot, "k")
        for key in "sqrt()":
            await pilot.press(key)
        await press(pilot, "enter")
        why = str(app.screen.query_one("#condition-why").render())
        assert "sqrt takes 1 argument, not 0" in why and "\n" not in why.strip()
        assert app.port.session.conditions == ()


@pytest.mark.skipif(not have_tmux(), reason="needs tmux")
def test_a_power_tower_entered_at_k_leaves_the_screen_alive_and_q_quits(tmp_path):
    """Issue 12 case 6 (TUI): `step ** step ** step < 0` at `k`, then `c`, froze the screen; `q` did nothing."""
    trace = tmp_path / "t.jsonl"
    app = TmuxApp(str(FIT_2X), "--trace", str(trace), width=100, height=30)
    app.start()
    pid = int(app.tmux("display-message", "-p", "#{pane_pid}").strip())
    try:
        app.wait_for(r"step 0|next: forward", timeout=60)
        app.send("k")
        app.wait_for(r"breakpoints: a run")
        app.send("-l", "step ** step ** step < 0")
        app.send("Enter")
        app.wait_for(r"step \*\* step \*\* step < 0")
        app.send("Escape")
        for _ in range(200):  # wait for the prompt to close: ESC then c at once would read as alt+c
            if "breakpoints: a run" not in app.screen():
                break
            time.sleep(0.05)
        app.send("c")
        app.wait_for(r"step (1[2-9]|[2-9]\d|\d{3,})\b", timeout=30)  # past step 8, where 8**8**8 stalled
        app.send("q")
        for _ in range(200):
            if app.exited():
                break
            time.sleep(0.05)
        assert app.exited()
    finally:
        try:
            os.killpg(os.getpgid(pid), signal.SIGKILL)  # a frozen gdtui ignores the SIGHUP of kill-server
        except ProcessLookupError:
            pass
        app.close()
    steps = [e for e in read_trace(trace) if e["event"] == "step"]
    assert len(steps) >= 12 and read_trace(trace)[-1]["event"] == "end"
    assert [e["loss"] for e in steps[:12]] == pytest.approx(plain_losses(FIT_2X, 12), rel=1e-6)


async def test_a_bad_break_names_the_key_that_sets_breakpoints():
    """Issue 12 case 26: a bad `--break` said "b sets breakpoints"; b is rewind, k sets breakpoints."""
    from gdtui.keys import BINDINGS
    from gdtui.widgets.breakpoint_screen import BreakpointScreen

    key = next(b.key for b in BINDINGS if b.action == "breakpoints")
    args = build_parser().parse_args([str(SCENARIOS / "not_gate.py"), "--break", "los < 1"])
    app = make_app(SCENARIOS / "not_gate.py", setup=lambda session: configure(session, args))
    async with opened(app) as pilot:
        from tests.app.pilot_helpers import panel_text

        assert f"; {key} sets breakpoints" in panel_text(app)
        await press(pilot, key)
        assert isinstance(app.screen, BreakpointScreen)

