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

    def close(self) -> None:
        self.tmux("kill-server", check=False)

    def __enter__(self) -> TmuxApp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
