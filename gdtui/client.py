"""A client of a trainer process: start one (or connect to one), send commands, receive events.

:class:`TrainerClient` owns one connection. A reader thread turns the trainer's lines into
events on a queue, which any consumer can drain: a test, or later a Textual thread worker that
posts each event as a message. When the connection ends the last event is :class:`Ended`: for a
trainer this client started, how its process ended (exit status or signal) and its last output
lines; for one it connected to, that the connection closed.

The trainer runs in its own session and process group, so a Ctrl-C at the screen's terminal never
reaches it and the screen decides what a Ctrl-C means (``interrupt``). This module imports no
torch and no textual.
"""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from gdtui import __version__
from gdtui import protocol as p

#: How long ``start`` waits for a new trainer's socket.
START_TIMEOUT_S = 60.0
#: Output lines kept for Ended.
LAST_LINES = 20


class TrainerError(Exception):
    """The trainer could not be started or reached: one line."""


@dataclass(frozen=True)
class Ended:
    """The connection ended. ``status``: the trainer's exit status; ``signal``: the signal that
    killed it (both None when this client did not start it, or it still runs)."""

    status: int | None
    signal: int | None
    last_lines: tuple[str, ...]
    detail: str = ""

    @property
    def how(self) -> str:
        if self.signal is not None:
            try:
                name = signal.Signals(self.signal).name
            except ValueError:
                name = f"signal {self.signal}"
            return f"the trainer was killed by {name} (signal {self.signal})"
        if self.status is not None:
            return f"the trainer exited with status {self.status}"
        return "the connection to the trainer closed"


class TrainerClient:
    """One connection to a trainer; ``process`` is the trainer when this client started it."""

    def __init__(self, sock: socket.socket, hello: p.Hello, path: str, process: subprocess.Popen | None = None,
                 name: str = "", output: int | None = None):
        self.sock = sock
        #: A copy of the trainer's pseudo-terminal (its reading end), read only once the trainer ended.
        self._output = output
        self.hello = hello
        self.path = path
        self.process = process
        self.events: queue.Queue = queue.Queue()
        self.last_lines: deque[str] = deque(maxlen=LAST_LINES)
        self._send_lock = threading.Lock()
        self._closed = False
        self._reader = p.LineReader(sock.recv)
        sock.sendall(p.dumps(p.Attach(p.PROTOCOL_VERSION, __version__, os.getpid(), name)))
        threading.Thread(target=self._read, name="gdtui-trainer-events", daemon=True).start()

    # --- starting and connecting ---------------------------------------------------------

    @classmethod
    def start(cls, scenario: str, *, flags: Sequence[str] = (), args: Sequence[str] = (), socket_path: str | None = None,
              python: str = sys.executable, env: dict | None = None, cwd: str | None = None,
              name: str = "") -> TrainerClient:
        """Start ``python -m gdtui.trainer SCENARIO`` (its own session) and attach to it.

        The trainer waits for this client before it loads the scenario, so no output is lost."""
        path = socket_path or os.path.join(p.socket_dir(), f"trainer-{os.getpid()}-{time.monotonic_ns()}.sock")
        command = [python, "-m", "gdtui.trainer", scenario, "--socket", path, "--wait", *flags, "--", *args]
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                   start_new_session=True, env=env, cwd=cwd)
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                error = process.stderr.read().decode("utf-8", "replace").strip() if process.stderr else ""
                raise TrainerError(error.splitlines()[-1] if error else f"the trainer exited with status {process.returncode}")
            try:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.connect(path)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                sock.close()
                if time.monotonic() > deadline:
                    process.kill()
                    raise TrainerError(f"the trainer did not open {path} in {START_TIMEOUT_S:g} s") from None
                time.sleep(0.02)
        try:
            return cls._greeted(sock, path, process, name)
        except BaseException:
            process.kill()
            process.wait()
            raise

    @classmethod
    def connect(cls, path: str, name: str = "") -> TrainerClient:
        """Attach to a trainer that serves ``path``. TrainerError when it refuses (another client is
        attached) or speaks another protocol version."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(path)
        except OSError as exc:
            sock.close()
            raise TrainerError(f"{path}: no trainer answers there ({exc.strerror})") from None
        return cls._greeted(sock, path, None, name)

    @classmethod
    def _greeted(cls, sock: socket.socket, path: str, process, name: str) -> TrainerClient:
        try:
            first, output = _read_one(sock)
        except p.VersionMismatch as exc:
            sock.close()
            raise TrainerError(str(exc)) from None
        if isinstance(first, p.Refused):
            sock.close()
            raise TrainerError(first.reason)
        if not isinstance(first, p.Hello):
            sock.close()
            raise TrainerError(f"{path}: the first message was not a hello")
        return cls(sock, first, path, process, name, output)

    # --- talking ------------------------------------------------------------------------------

    def send(self, command) -> None:
        with self._send_lock:
            self.sock.sendall(p.dumps(command))

    def interrupt(self) -> None:
        """Stop the step in progress: the trainer's user code gets KeyboardInterrupt (SIGINT)."""
        self.send(p.Interrupt())

    def next_event(self, timeout: float | None = None):
        """The next event (Ended last); raises queue.Empty after ``timeout`` seconds."""
        return self.events.get(timeout=timeout)

    def wait_for(self, kind: type | tuple[type, ...], timeout: float = 60.0, keep: list | None = None):
        """Events until one of ``kind`` (or Ended), which is returned; the others go to ``keep``."""
        deadline = time.monotonic() + timeout
        while True:
            event = self.next_event(timeout=max(0.0, deadline - time.monotonic()))
            if isinstance(event, kind) or isinstance(event, Ended):
                return event
            if keep is not None:
                keep.append(event)

    def detach(self) -> None:
        """Close the connection and leave the trainer running (paused)."""
        self._closed = True
        with self._send_lock:
            output, self._output = self._output, None
        if output is not None:
            os.close(output)
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()

    def quit(self, timeout: float = 10.0) -> Ended | None:
        """End the trainer: Quit, then (a trainer this client started) SIGKILL to its process group
        if it has not ended within ``timeout``. Leaves no process behind."""
        try:
            self.send(p.Quit())
        except OSError:
            pass
        process = self.process
        if process is None:
            self.detach()
            return None
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait()
        ended = self._ended()
        self.detach()
        return ended

    def kill(self) -> None:
        """SIGKILL the trainer's process group (this client started it)."""
        if self.process is not None and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait()

    # --- the reader thread --------------------------------------------------------------------

    def _read(self) -> None:
        detail = ""
        while True:
            try:
                event = self._reader.read()
            except (OSError, p.ProtocolError) as exc:
                detail = "" if self._closed else str(exc)
                break
            if event is None:
                break
            if isinstance(event, p.Refused):  # a refusal after the hello (another client attached meanwhile)
                detail = event.reason
                break
            if isinstance(event, p.Output):
                self.last_lines.extend(text for _, text in event.lines)
            self.events.put(event)
        self.events.put(self._ended(detail))

    def _ended(self, detail: str = "") -> Ended:
        process = self.process
        status = sig = None
        if process is not None:
            try:
                code = process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                code = None
            if code is not None:
                status, sig = (None, -code) if code < 0 else (code, None)
        with self._send_lock:  # the reader thread and quit() may both get here
            output, self._output = self._output, None
        if output is not None and process is not None and process.poll() is not None:
            rest = p.OUTPUT_MARK.sub(b"", _drain(output))
            self.last_lines.extend(line.rstrip(b"\r").decode("utf-8", "replace") for line in rest.splitlines())
        if output is not None:
            os.close(output)
        return Ended(status, sig, tuple(self.last_lines), detail)


def _read_one(sock: socket.socket):
    """The first message, read a byte at a time: what follows it belongs to the reader thread.
    Returns it and the file descriptor that came with it (the trainer's output), or None."""
    byte, fds, _, _ = socket.recv_fds(sock, 1, 1)
    output = fds[0] if fds else None
    line = bytearray()
    while byte and byte != b"\n":
        line += byte
        if len(line) > 1 << 20:
            raise TrainerError("the trainer's hello is too long")
        byte = sock.recv(1)
    if not byte:
        raise TrainerError("the trainer closed the connection before its hello")
    return p.loads(bytes(line)), output


def _drain(fd: int) -> bytes:
    """What is left to read of the trainer's pseudo-terminal, once it has ended."""
    os.set_blocking(fd, False)
    data = bytearray()
    while True:
        try:
            chunk = os.read(fd, 1 << 16)
        except OSError:  # EAGAIN: nothing more; EIO: every writer is gone and it is empty
            break
        if not chunk:
            break
        data += chunk
    return bytes(data)
