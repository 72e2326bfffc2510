"""Stop conditions that cannot freeze gdtui: bounded evaluation, checked calls, bounded size (issue 12 cases 6 and 26).

The hangs are tested in a child process (headless) or a real terminal (tmux):
on a gdtui that hangs, the test fails on its timeout instead of hanging itself.
References: the plain loop of conftest, and Python's own float arithmetic.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from test_app import opened, press

from conftest import ROOT, SCENARIOS, PlainLoop, read_trace
from gdtui.cli import build_parser, configure, main
from gdtui.engine.conditions import ConditionError, parse_condition
from gdtui.jobs import make_app
from tmux_driver import TmuxApp, have_tmux

FIT_2X = SCENARIOS / "fit_2x.py"


def headless(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """``python -m gdtui ARGS`` in a child process; a hang raises TimeoutExpired (the child is killed)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "gdtui", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env=env)


def plain_losses(path, steps: int) -> list[float]:
    loop = PlainLoop(path)
    return [loop.step(loop.ns.get("mode", "optim"))["loss"] for _ in range(steps)]


def test_a_huge_integer_power_in_a_break_holds_at_once(tmp_path):
    """Issue 12 case 6: `--break 'loss < 9**9**9'` spun until Ctrl-C; evaluated in floats, 9**9**9 is inf."""
    trace = tmp_path / "t.jsonl"
    done = headless(str(FIT_2X), "--headless", "--break", "loss < 9**9**9", "--trace", str(trace))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "stopped after step 1: loss < 9**9**9"
    steps = [e for e in read_trace(trace) if e["event"] == "step"]
    assert [e["loss"] for e in steps] == pytest.approx(plain_losses(FIT_2X, 1), rel=1e-7)  # 30.0, the docstring's


def test_a_power_tower_of_step_never_stalls_a_headless_run(tmp_path):
    """Issue 12 case 6: `step ** step ** step < 0` took longer each step (8**8**8 has 15 million digits)."""
    trace = tmp_path / "t.jsonl"
    done = headless(str(FIT_2X), "--headless", "--steps", "12", "--break", "step ** step ** step < 0",
                    "--trace", str(trace), "--quiet")
    assert done.returncode == 0, done.stderr
    events = read_trace(trace)
    assert events[-1]["reason"] == "steps" and events[-1]["steps"] == 12
    losses = [e["loss"] for e in events if e["event"] == "step"]
    assert losses == pytest.approx(plain_losses(FIT_2X, 12), rel=1e-6)


TRUE = "(loss == loss)"
ONES = "+".join([TRUE] * 9)  # 9, built from comparisons: bools are ints in Python


@pytest.mark.parametrize(("text", "holds"), [
    ("loss < 9**9**9", True),                                # inf
    (f"({ONES}) ** ({ONES}) ** ({ONES}) > 1e308", True),      # 9**9**9 from bools: inf, not a huge int
    ("loss < " + "9" * 400, True),                           # an integer literal beyond float: inf
    ("-(10 ** 400) < -1e308", True),
    ("(-10) ** 1001 < -1e308", True),                        # overflow keeps the sign of an odd power
    ("isnan((-8) ** (1 / 3))", True),                        # real pow: NaN, not a complex number
    ("0 ** -1 == 1 / 0", True),                              # both inf, as IEEE 754's pow
    ("isnan(loss % 0)", True),
    ("step ** step ** step == 3 ** 27", True),               # exact in floats: 7625597484987
    ("loss < (1 / 0) - (1 / 0)", False),                     # inf - inf is NaN, and NaN compares false
], ids=range(10))
def test_conditions_evaluate_in_floats(text, holds):
    """Issue 12 case 6: every operation is a float operation, so none can build a huge integer."""
    script = (
        "import json, sys; from gdtui.engine.conditions import parse_condition\n"
        "c = parse_condition(sys.argv[1])\n"
        "print(json.dumps(c.holds({'loss': 0.25, 'step': 3})))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", script, text], capture_output=True, text=True, timeout=30,
                         env=env, cwd=ROOT).stdout.strip()
    assert out == json.dumps(holds)


@pytest.mark.parametrize(("text", "words"), [
    ("sqrt() < 1", "sqrt takes 1 argument, not 0; write sqrt(loss)"),
    ("isnan(loss, 3)", "isnan takes 1 argument, not 2; write isnan(loss)"),
    ("min(loss) < 1", "min takes 2 or more arguments, not 1; write min(loss, 1)"),
    ("max() > 0", "max takes 2 or more arguments, not 0"),
    ("abs < 1", "abs is a function; call it, as in abs(loss)"),
    ("not " * 1000 + "loss", "too long for a stop condition; keep it under 1000"),
    ("-" * 200 + "loss < 1", "nested more than 100 levels deep"),
    (" + ".join(["loss"] * 3000) + " < 1", "too long for a stop condition"),
    (" + ".join(["loss"] * 150)[:990] + " < 1", "nested more than 100 levels deep"),
    ("(" * 1000 + "loss" + ")" * 1000, "too long for a stop condition"),
], ids=["sqrt()", "isnan(loss, 3)", "min(loss)", "max()", "abs", "1000 nots", "200 minus", "3000 terms",
        "150 terms", "1000 parentheses"])
def test_a_condition_that_could_never_fire_is_refused_at_entry(text, words, capsys):
    """Issue 12 case 6: wrong argument counts were accepted and never fired; deep or long ones raised RecursionError."""
    with pytest.raises(ConditionError, match=words.replace("(", r"\(").replace(")", r"\)")):
        parse_condition(text)
    assert main([str(SCENARIOS / "not_gate.py"), "--headless", "--break", text]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1 and len(captured.err) < 300
    assert captured.err.startswith("--break ") and words in captured.err


def test_sums_and_calls_of_a_sensible_size_still_work():
    """Issue 12 case 6: the bounds leave room for real conditions (90 terms; every function called rightly)."""
    cond = parse_condition(" + ".join(["loss"] * 90) + " == 90 * loss and sqrt(loss) == 0.5 and abs(-loss) == loss "
                           "and min(loss, 1, 2) == loss and max(loss, 1) == 1 and log10(100) == 2 "
                           "and not isnan(loss) and not isinf(loss) and isfinite(loss)")
    assert cond.holds({"loss": 0.25, "step": 3})


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
        from test_app_bad_scenarios import panel_text

        assert f"; {key} sets breakpoints" in panel_text(app)
        await press(pilot, key)
        assert isinstance(app.screen, BreakpointScreen)
