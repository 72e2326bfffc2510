"""The step-debugger's trainer process in a real terminal (tmux): faults in the user's code never
take the screen with them; the screen says how the trainer ended, r starts a new one and q
leaves no process behind (checked by pid)."""

from __future__ import annotations

import os
import re
import time

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


def quit_leaves_nothing(app: TmuxApp, pids: set[int]) -> None:
    app.send("q")
    deadline = time.perf_counter() + 10
    while not app.exited():
        assert time.perf_counter() < deadline, app.screen()
        time.sleep(0.05)
    deadline = time.perf_counter() + 5
    while any(alive(pid) for pid in pids):
        assert time.perf_counter() < deadline, [pid for pid in pids if alive(pid)]
        time.sleep(0.05)


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
    screen stays intact, the status shows the last line, O lists them marked with their step; q
    leaves no process."""
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
        time.sleep(0.5)
        quit_leaves_nothing(app, pids)


def test_ctrl_c_interrupts_a_step_stuck_in_the_model_and_the_session_goes_on():
    """Issue 13: a step that sleeps in the model: ctrl+c interrupts it (KeyboardInterrupt in the
    trainer), the step is rolled back and the session goes on; q leaves no process."""
    env = {"GDTUI_TEST_SLEPT": ""}
    with TmuxApp(FAULTY, "--", "--sleep-at", "2", env=env, width=100, height=30) as app:
        pids = started(app)
        app.send("Space")
        app.wait_for(r"step 1 ")
        app.send("Space")
        app.wait_for(r"step running")
        app.send("C-c")
        screen = app.wait_for(r"rolled back")
        assert "step 1 " in screen
        app.send("Space")
        app.wait_for(r"step 2 ")
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
    import shutil
    import signal
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

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
