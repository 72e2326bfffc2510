"""The step-debugger's trainer process in a real terminal (tmux): faults in the user's code never
take the screen with them; the screen says how the trainer ended, r starts a new one and q
leaves no process behind (checked by pid)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from gdtui.engine.formatting import format_number
from tests.paths import ROOT
from tests.plain_loop import PlainLoop
from tests.tmux_driver import TmuxApp, alive, descendants, have_tmux

pytestmark = pytest.mark.skipif(not have_tmux(), reason="tmux is not installed (apt-get install -y tmux)")

FAULTY = "tests/trainer_scenarios/faulty.py"


def app_pids(app: TmuxApp) -> set[int]:
    """The app's process and the trainer it started."""
    shell = int(app.tmux("display-message", "-p", "#{pane_pid}").strip())
    return descendants(shell)


def quit_leaves_nothing(app: TmuxApp, pids: set[int], key: str = "q") -> None:
    """``key`` ends gdtui, and none of ``pids`` is left."""
    app.send(key)
    deadline = time.perf_counter() + 10
    while not app.exited():
        assert time.perf_counter() < deadline, app.screen()
        time.sleep(0.05)
    deadline = time.perf_counter() + 5
    while any(alive(pid) for pid in pids):
        assert time.perf_counter() < deadline, [pid for pid in pids if alive(pid)]
        time.sleep(0.05)


def trainer_pid(app: TmuxApp) -> int:
    """The pid of the screen's trainer (``python -m gdtui.trainer``)."""
    for pid in app_pids(app):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"gdtui.trainer" in f.read():
                    return pid
        except FileNotFoundError:
            continue
    raise AssertionError(f"no trainer process among {app_pids(app)}")


def restarted(app: TmuxApp, old: int) -> int:
    """Press r: a new trainer, at step 0; its pid."""
    app.send("r")
    app.wait_for(r"step 0 ")
    deadline = time.perf_counter() + 10
    while (new := trainer_pid(app)) == old:
        assert time.perf_counter() < deadline, "r started no new trainer"
        time.sleep(0.05)
    assert not alive(old)
    return new


def reset_in_place(app: TmuxApp) -> None:
    """Press r with the trainer alive: it re-reads the scenario (the same process) and is at step 0."""
    trainer = trainer_pid(app)
    app.send("r")
    app.wait_for(r"step 0 ")
    assert trainer_pid(app) == trainer and alive(trainer)


def intact(screen: str) -> None:
    """The footer and the status line are still drawn."""
    assert "Back" in screen and "Quit" in screen, screen
    assert re.search(r"step \d+ ", screen), screen


def started(app: TmuxApp) -> set[int]:
    app.start()
    app.wait_for(r"step 0 ")
    pids = app_pids(app)
    assert len(pids) >= 2, "no trainer process"
    return pids


@pytest.mark.parametrize("flag, cause, last_line", [
    ("--segfault-at", r"SIGSEGV", "about to read address 0"),
    ("--exit-at", r"exited with status 7", "calling os._exit\\(7\\)"),
])
def test_a_trainer_that_dies_leaves_the_screen_saying_how_and_r_starts_another(flag, cause, last_line):
    """Issue 13: a segfault at step 3 (ctypes.string_at(0)) and os._exit(7) at step 3 end the
    trainer, not the screen: the panel says how, with its last output line; r starts a new trainer
    at step 0, which steps; q leaves no process."""
    with TmuxApp(FAULTY, "--", flag, "3", width=100, height=30) as app:
        pids = started(app)
        app.send("Space", "Space")
        app.wait_for(r"step 2 ")
        app.send("Space")
        screen = app.wait_for(r"trainer ended[\s\S]*" + cause)
        assert re.search(last_line, screen), screen
        assert "Back" in screen  # the footer is still drawn: the screen is intact
        app.send("r")
        app.wait_for(r"step 0 ")
        pids |= app_pids(app)
        app.send("Space")
        app.wait_for(r"step 1 ")
        quit_leaves_nothing(app, pids)


def test_a_thousand_lines_a_step_and_fd1_writes_show_in_the_output_view():
    """Issue 13: a scenario that prints 1,000 lines a step and writes to fd 1 with os.write: the
    screen stays intact, the status shows the last line, O lists them marked with their step; r
    resets (the live trainer re-reads the scenario) to step 0, the screen intact; q leaves no process."""
    with TmuxApp(FAULTY, "--", "--print", "1000", "--os-write", width=100, height=30) as app:
        pids = started(app)
        app.send("Space")
        app.wait_for(r"step 1 ")
        app.send("Space")
        screen = app.wait_for(r"step 2 [\s\S]*› fd1 step \d")  # the last line, from fd 1
        assert "Back" in screen
        app.send("O")
        app.wait_for(r"output of [\s\S]*\[\d\] step \d line \d+")  # each line marked with its step
        app.send("Escape")
        app.wait_for(r"Back")
        reset_in_place(app)
        intact(app.wait_for(r"step 0 [\s\S]*Quit"))
        quit_leaves_nothing(app, pids)


def test_ctrl_c_interrupts_a_step_stuck_in_the_model_and_the_session_goes_on(monkeypatch):
    """Issue 13: a step that sleeps in the model: ctrl+c interrupts it (KeyboardInterrupt in the
    trainer), the screen stays intact, the step is rolled back (step 1 and its loss, as a plain loop's
    first step), the session goes on (the next step is a plain loop's second), r resets (the live
    trainer re-reads the scenario) to step 0, and q leaves no process (by pid)."""
    monkeypatch.setattr(sys, "argv", [FAULTY])
    plain = PlainLoop(ROOT / FAULTY)
    losses = [format_number(plain.step()["loss"], 5) for _ in range(2)]
    env = {"GDTUI_TEST_SLEPT": ""}
    with TmuxApp(FAULTY, "--", "--sleep-at", "2", env=env, width=100, height=30) as app:
        pids = started(app)
        app.send("Space")
        before = app.wait_for(rf"step 1 [\s\S]*loss {re.escape(losses[0])}")
        app.send("Space")
        app.wait_for(r"step running")
        app.send("C-c")
        screen = app.wait_for(r"rolled back")
        intact(screen)
        assert "step 1 " in screen and f"loss {losses[0]}" in screen
        table = [line for line in before.splitlines() if re.match(r"\W*[wb]\b", line.strip("│ "))]
        assert table and all(line in screen for line in table), (table, screen)  # the tensors as before
        assert trainer_pid(app) in pids  # the same trainer
        app.send("Space")
        app.wait_for(rf"step 2 [\s\S]*loss {re.escape(losses[1])}")
        reset_in_place(app)
        intact(app.screen())
        quit_leaves_nothing(app, pids)


def test_listen_connect_step_detach_and_connect_again_keeps_step_and_rewind(tmp_path):
    """Issue 13: listen in one terminal, connect from another, step 3, d (the screen prints the line
    that reconnects; the trainer lives), connect again with no path (the only trainer): step 3 is
    shown with a plain loop's step-3 loss, and b rewinds to step 2 with the plain loop's step-2 loss.
    q then asks first (a --listen trainer), and q again ends the trainer: no process is left."""
    plain = PlainLoop(ROOT / "scenarios/not_gate.py")
    losses = [format_number(plain.step()["loss"], 5) for _ in range(3)]
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    env = {"XDG_RUNTIME_DIR": str(runtime)}
    with TmuxApp("scenarios/not_gate.py", "--listen", env=env, width=200, height=10) as listener:
        listener.start()
        found = re.search(r"listens on (\S+) \(pid (\d+)\)", listener.wait_for(r"listens on \S+ \(pid \d+\)", 60))
        path, pid = found.group(1), int(found.group(2))
        with TmuxApp("--connect", path, env=env, width=160, height=30) as screen:
            screen.start()
            screen.wait_for(r"step 0 ", 60)
            for n in (1, 2, 3):
                screen.send("Space")
                screen.wait_for(rf"step {n} ")
            assert f"loss {losses[2]}" in screen.wait_for(rf"loss {re.escape(losses[2])}")
            screen.send("d")
            deadline = time.perf_counter() + 10
            while not screen.exited():
                assert time.perf_counter() < deadline, screen.screen()
                time.sleep(0.05)
            screen.wait_for(r"reconnect with: ")
            said = screen.tmux("capture-pane", "-p", "-S", "-100")  # with the lines scrolled above the pane
            assert f"waits, paused at step 3\nreconnect with: gdtui --connect {path}\n" in said, said
        assert alive(pid)
        with TmuxApp("--connect", env=env, width=160, height=30) as again:
            again.start()
            assert f"loss {losses[2]}" in again.wait_for(r"step 3 [\s\S]*loss ", 60)
            again.send("b")
            assert f"loss {losses[1]}" in again.wait_for(r"step 2 [\s\S]*loss ")
            again.send("q")
            again.wait_for(r"q again ends the trainer; d detaches; esc stays")
            assert alive(pid)
            quit_leaves_nothing(again, {pid})
        deadline = time.perf_counter() + 10
        while not listener.exited():
            assert time.perf_counter() < deadline, listener.screen()
            time.sleep(0.05)


def test_a_screen_whose_terminal_hangs_up_leaves_its_trainer_paused_for_connect():
    """Issue 13: when the screen's terminal goes away (tmux killed: SIGHUP, as when SSH drops), the
    trainer it started lives on, paused at its step, and `gdtui --connect --status` finds it there."""
    runtime = Path(tempfile.mkdtemp(prefix="gd-", dir="/tmp"))  # short: a Unix socket path has ~100 bytes
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime), "PYTHONPATH": str(ROOT)}

    def status() -> str:
        out = subprocess.run([sys.executable, "-m", "gdtui", "--connect", "--status"], capture_output=True,
                             text=True, cwd=ROOT, env=env, timeout=60, check=False)
        return out.stdout + out.stderr

    screen = TmuxApp("scenarios/not_gate.py", env={"XDG_RUNTIME_DIR": str(runtime)}, width=160, height=30)
    screen.start()
    screen.wait_for(r"step 0 ", 60)
    for n in (1, 2):
        screen.send("Space")
        screen.wait_for(rf"step {n} ")
    pids = app_pids(screen)
    screen.hang_up()  # the terminal goes away: SIGHUP
    listed = ""
    deadline = time.perf_counter() + 20
    while "step 2" not in listed:
        assert time.perf_counter() < deadline, listed
        time.sleep(0.2)
        listed = status()
    trainer = int(re.search(r"pid (\d+)", listed).group(1))
    assert trainer in pids and alive(trainer)
    os.kill(trainer, signal.SIGTERM)  # ends it and removes its socket
    deadline = time.perf_counter() + 10
    while alive(trainer):
        assert time.perf_counter() < deadline
        time.sleep(0.05)
    shutil.rmtree(runtime, ignore_errors=True)


def test_a_trainer_killed_with_sigkill_leaves_the_screen_saying_so_and_r_starts_another():
    """Issue 13: a trainer killed with SIGKILL while the screen is open (as the OOM killer does): the
    panel says it was killed by SIGKILL, with its last output lines; the screen is intact; r starts a
    new trainer at step 0, which steps; q leaves no process (by pid)."""
    with TmuxApp(FAULTY, "--", "--print", "3", width=100, height=30) as app:
        pids = started(app)
        app.send("Space", "Space")
        app.wait_for(r"step 2 ")
        trainer = trainer_pid(app)
        os.kill(trainer, signal.SIGKILL)
        screen = app.wait_for(r"trainer was killed by SIGKILL")
        # what to do, and its last lines, the newest included
        assert re.search(r"SIGKILL \(signal 9\); r\s+starts\s+a\s+new\s+trainer,\s+q\s+quits[\s\S]*"
                         r"step 2 line 0\s+step 2 line 1\s+step 2 line 2\n", screen), screen
        intact(screen)
        assert not alive(trainer)
        restarted(app, trainer)
        pids |= app_pids(app)
        app.send("Space")
        app.wait_for(r"step 1 ")
        quit_leaves_nothing(app, pids)


LOAD_ERROR = """import torch
w = torch.tensor([0.5], requires_grad=True)
raise ValueError("broken at load")
"""

STEP_ERROR = """import os
import torch
w = torch.tensor([0.5], requires_grad=True)
data = (torch.tensor([[0.0], [1.0]]), torch.tensor([[1.0], [0.0]]))
loss_fn = lambda pred, y: ((pred - y) ** 2).mean()
optimizer = torch.optim.SGD([w], lr=0.5)


def model(x):  # the trainer calls it once as it loads: it breaks only once the test asks
    if os.path.exists(__file__ + ".break"):
        raise RuntimeError("broken in the step")
    return torch.sigmoid(x * w)
"""


def loose(text: str) -> str:
    """A pattern of ``text`` that also matches it wrapped over lines."""
    return r"\s+".join(map(re.escape, text.split()))


def test_an_exception_in_load_or_step_through_a_trainer_is_one_line_and_r_reloads_the_fix():
    """Issue 13: an exception while the trainer loads the scenario, then (fixed, r) while it steps:
    each is one line in the error panel naming file:line, the screen stays; r loads the fixed file,
    whose steps are a plain loop's."""
    folder = Path(tempfile.mkdtemp(prefix="gd-", dir="/tmp"))  # short: the error line fits the panel
    path = folder / "s.py"
    path.write_text(LOAD_ERROR)
    with TmuxApp(str(path), width=160, height=30) as app:
        app.start()
        screen = app.wait_for(loose(f"{path}:3: loading the scenario raised ValueError: broken at load"))
        assert "Traceback" not in screen
        intact_footer = "Quit" in screen
        assert intact_footer, screen
        pids = app_pids(app)
        path.write_text(STEP_ERROR)
        app.send("r")
        app.wait_for(r"step 0 ")
        pids |= app_pids(app)
        Path(f"{path}.break").touch()
        app.send("Space")
        screen = app.wait_for(loose(f"{path}:11:") + r"\s+.*" + loose("RuntimeError: broken in the step"))
        assert "Traceback" not in screen
        intact(screen)
        path.write_text(STEP_ERROR.replace('raise RuntimeError("broken in the step")', "pass"))
        plain = PlainLoop(path)
        loss = format_number(plain.step()["loss"], 5)
        app.send("r")
        app.wait_for(r"step 0 ")
        pids |= app_pids(app)
        app.send("Space")
        app.wait_for(rf"step 1 [\s\S]*loss {re.escape(loss)}")
        quit_leaves_nothing(app, pids)
    shutil.rmtree(folder, ignore_errors=True)


def test_a_second_screen_is_refused_and_sighup_mid_run_pauses_the_trainer_for_connect():
    """Issue 13: gdtui --connect PATH (a screen, in tmux) on a trainer that has a screen already: one
    line naming the connected one, a non-zero exit status, and the first screen steps on. Then SIGHUP
    to that screen in the middle of a continuous run (c): the trainer pauses (its step stops
    advancing) and waits; plain gdtui --connect (no path) finds it, shows the same step, b rewinds,
    and q leaves no process."""
    runtime = Path(tempfile.mkdtemp(prefix="gd-", dir="/tmp"))  # short: a Unix socket path has ~100 bytes
    env = {"XDG_RUNTIME_DIR": str(runtime)}
    try:
        with TmuxApp("scenarios/not_gate.py", env=env, width=160, height=30) as first:
            first.start()
            first.wait_for(r"step 0 ", 60)
            trainer = trainer_pid(first)
            [path] = (runtime / "gdtui").glob("*.sock")
            with TmuxApp("--connect", str(path), env=env, width=160, height=10) as second:
                second.start()
                deadline = time.perf_counter() + 30
                while not second.exited():
                    assert time.perf_counter() < deadline, second.screen()
                    time.sleep(0.05)
                said = second.tmux("capture-pane", "-p", "-J", "-S", "-100").strip()  # its wrapped line, joined
                assert re.fullmatch(rf"gdtui --connect: the trainer at {re.escape(str(path))} already has a client: "
                                    r"pid \d+ \(.+\), attached at \d\d:\d\d:\d\d \(\d+ s ago\); detach it "
                                    r"first(\s*Pane is dead.*)?", said, re.S), said
                assert second.tmux("display-message", "-p", "#{pane_dead_status}").strip() not in ("", "0")
            first.send("Space")
            first.wait_for(r"step 1 ")
            first.send("c")
            first.wait_for(r"step [1-9]\d+ ")  # the run goes on
            first.hang_up()
            steps = []
            for _ in range(2):
                time.sleep(0.5)
                out = subprocess.run([sys.executable, "-m", "gdtui", "--connect", "--status"], capture_output=True,
                                     text=True, cwd=ROOT, env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
                                     timeout=60, check=False).stdout
                steps.append(int(re.search(r"  step (\d+)  ", out).group(1)))
            assert steps[0] == steps[1] > 1 and alive(trainer), steps  # paused, waiting
            step = steps[0]
        with TmuxApp("--connect", env=env, width=160, height=30) as again:
            again.start()
            again.wait_for(rf"step {step} ", 60)
            again.send("b")
            again.wait_for(rf"step {step - 1} ")
            again.send("q")
            deadline = time.perf_counter() + 10
            while alive(trainer) or not again.exited():
                screen = again.screen()
                if "q again" in screen:
                    again.send("q")
                assert time.perf_counter() < deadline, screen
                time.sleep(0.1)
    finally:
        if alive(trainer):
            os.kill(trainer, signal.SIGTERM)
        shutil.rmtree(runtime, ignore_errors=True)


def test_the_trainers_output_is_a_tty_and_ctrl_c_with_no_step_running_quits():
    """Issue 13: the trainer's fds 1 and 2 are a terminal: a scenario that prints os.isatty(1) and
    runs `echo child` shows both lines in the output view, marked with the step; then ctrl+c with no
    step running quits, on the real trainer, and leaves no process (by pid)."""
    with TmuxApp(FAULTY, "--", "--tty", width=100, height=30) as app:
        pids = started(app)
        app.send("Space")
        app.wait_for(r"step 1 ")
        app.send("O")
        screen = app.wait_for(r"\[1\] child step 1")
        assert "[1] isatty(1) True step 1" in screen, screen
        app.send("Escape")
        app.wait_for(r"Back")
        time.sleep(0.3)
        quit_leaves_nothing(app, pids, key="C-c")
