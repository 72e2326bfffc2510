"""Drive the installed ``gdtui`` in a real terminal (tmux) and read the screen back.

Used by test_tmux.py and by bench_tui.py. Each TmuxApp has its own tmux
server socket, so it never touches the user's sessions.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def have_tmux() -> bool:
    return shutil.which("tmux") is not None


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def descendants(pid: int) -> set[int]:
    """``pid`` and the processes it started, and theirs (Linux /proc; elsewhere just ``pid``)."""
    found = {pid}
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return found
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                kids = {int(k) for k in f.read().split()}
        except FileNotFoundError:
            continue
        for kid in kids:
            found |= descendants(kid)
    return found


class TmuxApp:
    """``python -m gdtui ARGS`` (or ``python PROGRAM ARGS``) in a detached tmux session of ``width`` x ``height``."""

    def __init__(self, *args: str, width: int = 80, height: int = 24, env: dict[str, str] | None = None,
                 program: str | None = None):
        self.socket = f"gdtui-{os.getpid()}-{time.monotonic_ns()}"
        self.args = args
        self.program = program or "-m gdtui"  # or a script path, for the bench's bare baseline
        self.size = (width, height)
        self.env = {"TERM": "xterm-256color", **(env or {})}

    def tmux(self, *args: str, check: bool = True) -> str:
        out = subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, check=check)
        return out.stdout

    def start(self) -> float:
        """Start the app; return the monotonic time just before tmux launched it."""
        env = " ".join(f"{k}={v}" for k, v in self.env.items())
        command = f"cd {ROOT} && env {env} {sys.executable} {self.program} {' '.join(self.args)}"
        t0 = time.perf_counter()
        self.tmux("-f", "/dev/null", "new-session", "-d", "-x", str(self.size[0]), "-y", str(self.size[1]), command)
        self.tmux("set-option", "-g", "remain-on-exit", "on")
        return t0

    def screen(self, escapes: bool = False) -> str:
        return self.tmux("capture-pane", "-p", *(["-e"] if escapes else []), check=False)

    def send(self, *keys: str) -> None:
        self.tmux("send-keys", *keys)

    def wait_for(self, pattern: str, timeout: float = 20.0, poll: float = 0.002) -> str:
        """Poll the screen until ``pattern`` (a regex) shows; return the screen."""
        deadline = time.perf_counter() + timeout
        rx = re.compile(pattern)
        while True:
            text = self.screen()
            if rx.search(text):
                return text
            if time.perf_counter() > deadline:
                raise TimeoutError(f"{pattern!r} did not appear; the screen shows:\n{text}")
            time.sleep(poll)

    def exited(self) -> bool:
        return self.tmux("display-message", "-p", "#{pane_dead}", check=False).strip() == "1"

    def processes(self) -> set[int]:
        """The pane's process and every process it started (the screen's trainer too)."""
        out = self.tmux("display-message", "-p", "#{pane_pid}", check=False).strip()
        return descendants(int(out)) if out.isdigit() else set()

    def hang_up(self) -> None:
        """Kill the tmux server: the terminal goes away (SIGHUP), as when an SSH link drops."""
        self.tmux("kill-server", check=False)

    def close(self) -> None:
        """Hang up, then end what the app left running: a screen that hangs up detaches from its
        trainer, which would otherwise wait, paused, for a screen that never comes."""
        left = self.processes()
        self.hang_up()
        deadline = time.perf_counter() + 5
        while left and time.perf_counter() < deadline:
            left = {pid for pid in left if alive(pid)}
            time.sleep(0.05)
        for pid in left:
            try:
                os.kill(pid, 15)  # SIGTERM: a trainer then removes its socket
            except ProcessLookupError:
                pass

    def __enter__(self) -> TmuxApp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
