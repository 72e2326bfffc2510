"""A client of a trainer process: start one (or connect to one), send commands, receive events.

:class:`TrainerClient` owns one connection. A reader thread turns the trainer's lines into
events on a queue, which any consumer can drain: a test, or later a Textual thread worker that
posts each event as a message. When the connection ends the last event is :class:`Ended`: for a
trainer this client started, how its process ended (exit status or signal) and its last output
lines; for one it connected to, that the connection closed.

:func:`find_trainers` lists the user's trainers from their hellos (a status query that does not
attach) and removes stale sockets; :func:`list_trainers`, :func:`pick_trainer` and
:func:`remote_steps` are what ``gdtui --connect`` runs (the screen on a trainer is gdtui.client_port's).

The trainer runs in its own session and process group, so a Ctrl-C at the screen's terminal never
reaches it and the screen decides what a Ctrl-C means (``interrupt``). This module imports no
torch and no textual.
"""

from __future__ import annotations

import os
import queue
import select
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TextIO

from gdtui import __version__
from gdtui import protocol as p
from gdtui.marked_output import MarkedLines

#: How long ``start`` waits for a new trainer's socket.
START_TIMEOUT_S = 60.0
#: After a read of the trainer's output that held only step marks, the next waits this long.
OUTPUT_PAUSE_S = 0.005
#: Output lines kept for Ended.
LAST_LINES = 20
#: How long a trainer has to answer a connection (its hello, then Attached or Refused).
ANSWER_TIMEOUT_S = 10.0
#: A socket nobody answers on is stale, and a listing removes it, once it is this old: a trainer
#: that has just bound its socket may not listen on it yet.
STALE_AFTER_S = 5.0


class TrainerError(Exception):
    """The trainer could not be started or reached: one line."""


class StaleSocket(TrainerError):
    """A socket that nobody answers on: its trainer is gone."""


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
                 name: str = "", output: int | None = None, reader: p.LineReader | None = None,
                 attached: p.Attached | None = None):
        self.sock = sock
        #: A copy of the trainer's pseudo-terminal (its reading end): the reader thread reads it
        #: while this client is attached, and drains it once the trainer ended.
        self._output = output
        attached = attached or p.Attached()
        self._lines = MarkedLines(attached.step, attached.partial.encode("latin-1"))
        self._sync_seen = 0
        self._output_after = 0.0  # the output is not read before this time (time.monotonic())
        self._done = threading.Event()
        self._end: Ended | None = None
        self.hello = hello
        self.path = path
        self.process = process
        self.events: queue.Queue = queue.Queue()
        self.last_lines: deque[str] = deque(maxlen=LAST_LINES)
        self._send_lock = threading.Lock()
        self._closed = False
        self._reader = reader or p.LineReader(sock.recv)
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
        """Read the hello, attach, and read the answer: Attached, or Refused (TrainerError)."""
        sock.settimeout(ANSWER_TIMEOUT_S)
        output = None
        try:
            first, output = _read_one(sock)
            if isinstance(first, p.Refused):
                raise TrainerError(first.reason)
            if not isinstance(first, p.Hello):
                raise TrainerError(f"{path}: the first message was not a hello")
            reader = p.LineReader(sock.recv)
            sock.sendall(p.dumps(p.Attach(p.PROTOCOL_VERSION, __version__, os.getpid(), name)))
            answer = reader.read()
            if isinstance(answer, p.Refused):
                raise TrainerError(answer.reason)
            if not isinstance(answer, p.Attached):
                raise TrainerError(f"{path}: the trainer did not take the attach")
            sock.settimeout(None)
        except BaseException as exc:
            if output is not None:
                os.close(output)
            sock.close()
            if isinstance(exc, p.ProtocolError):
                raise TrainerError(str(exc)) from None
            if isinstance(exc, OSError):
                raise TrainerError(f"{path}: the trainer did not answer ({exc.strerror or 'timed out'})") from None
            raise
        return cls(sock, first, path, process, name, output, reader, answer)

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
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # the reader thread ends, and closes the output
        except OSError:
            pass
        self._done.wait(ANSWER_TIMEOUT_S)
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
        self._done.wait(ANSWER_TIMEOUT_S)  # the reader thread reads the rest of the output
        ended = self._end or self._ended()
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
        try:
            while True:
                try:
                    event = self._reader.buffered()
                    if event is None:
                        if not self._wait_and_take():
                            break
                        continue
                except (OSError, ValueError, p.ProtocolError) as exc:
                    detail = "" if self._closed else str(exc)
                    break
                if isinstance(event, p.Refused):  # a refusal after the hello (another client attached meanwhile)
                    detail = event.reason
                    break
                if isinstance(event, p.OutputSync):
                    self._read_output_until(event.n)
                    continue
                if isinstance(event, p.Output):
                    self.last_lines.extend(text for _, text in event.lines)
                self.events.put(event)
            self._end = self._ended(detail)
            self.events.put(self._end)
        finally:
            self._done.set()

    def _wait_and_take(self) -> bool:
        """Wait for the socket or the output; take what came. False at the socket's end."""
        watched, timeout = [self.sock], None
        if self._output is not None:
            wait = self._output_after - time.monotonic()
            if wait > 0:
                timeout = wait  # the output waits a little (see _take_output); the socket does not
            else:
                watched.append(self._output)
        ready, _, _ = select.select(watched, [], [], timeout)
        if self._output is not None and self._output in ready:
            self._take_output()
        if self.sock in ready:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                return False
            self._reader.feed(chunk)
        return True

    def _take_output(self, final: bool = False, pace: bool = True) -> int:
        """Read the trainer's output once (all that is left when ``final``): its lines become an
        Output event. The number of bytes read."""
        data = _drain(self._output) if final else _read_some(self._output)
        lines, synced = self._lines.feed(data, final=final)
        if synced is not None:
            self._sync_seen = max(self._sync_seen, synced)
        if lines:
            self.last_lines.extend(text for _, text in lines)
            self.events.put(p.Output(tuple(lines)))
        elif not data and not final:  # EIO (every writer gone) or another reader took it: no spin
            self._output_after = time.monotonic() + OUTPUT_PAUSE_S
        elif len(data) < 4096 and pace and not final:
            # Marks alone, as a run writes one a step: the next read of the output waits 5 ms, so a
            # run wakes this thread 200 times a second at most, not once a step. Events do not wait.
            self._output_after = time.monotonic() + OUTPUT_PAUSE_S
        return len(data)

    def _read_output_until(self, n: int) -> None:
        """The trainer wrote sync mark ``n``: read the output up to it (a second at most)."""
        deadline = time.monotonic() + 1.0
        while self._output is not None and self._sync_seen < n:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            ready, _, _ = select.select([self._output], [], [], left)
            if ready and not self._take_output(pace=False):
                return

    def _ended(self, detail: str = "") -> Ended:
        process = self.process
        status = sig = None
        if process is not None:
            try:
                code = process.poll() if self._closed else process.wait(timeout=10)  # detached: it runs on
            except subprocess.TimeoutExpired:
                code = None
            if code is not None:
                status, sig = (None, -code) if code < 0 else (code, None)
        with self._send_lock:  # the reader thread and quit() may both get here
            output, self._output = self._output, None
        if output is not None:
            if process is not None and process.poll() is not None:
                self._output = output
                self._take_output(final=True)
                self._output = None
            os.close(output)
        return Ended(status, sig, tuple(self.last_lines), detail)


# --- finding trainers, and the command line's --connect -------------------------------------


def trainer_status(path: str, timeout: float = 2.0) -> p.Hello:
    """The hello of the trainer at ``path`` (its scenario, step, client...), without attaching.
    StaleSocket when nobody answers there; TrainerError for anything else, in one line."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            if not stat.S_ISSOCK(os.stat(path).st_mode):
                raise TrainerError(f"{path}: not a socket, so no trainer is there")
            sock.connect(path)
        except ConnectionRefusedError:
            raise StaleSocket(f"{path}: a stale socket (no trainer answers there)") from None
        except OSError as exc:
            raise TrainerError(f"{path}: no trainer answers there ({exc.strerror})") from None
        try:
            hello, output = _read_one(sock)
            if output is not None:
                os.close(output)
            if not isinstance(hello, p.Hello):
                raise TrainerError(f"{path}: the first message was not a hello")
            sock.sendall(p.dumps(p.Status()))
        except p.ProtocolError as exc:
            raise TrainerError(f"{path}: {exc}") from None
        except OSError as exc:
            raise TrainerError(f"{path}: the trainer did not answer in {timeout:g} s ({exc.strerror or 'timed out'})") from None
        return hello
    finally:
        sock.close()


@dataclass(frozen=True)
class Found:
    """A socket in the socket folder: its trainer's hello, or why it gave none."""

    path: str
    hello: p.Hello | None
    problem: str | None = None


def find_trainers(folder: str | None = None) -> tuple[list[Found], list[str]]:
    """The user's trainers in ``folder`` (default: gdtui's socket folder), and the stale sockets
    found there and removed."""
    folder = folder or p.socket_dir()
    found, removed = [], []
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        try:
            info = os.lstat(path)
        except OSError:
            continue
        if not stat.S_ISSOCK(info.st_mode) or info.st_uid != os.getuid():
            continue
        try:
            found.append(Found(path, trainer_status(path)))
        except StaleSocket as exc:
            if time.time() - info.st_mtime < STALE_AFTER_S:
                found.append(Found(path, None, str(exc)))
                continue
            try:
                os.unlink(path)
                removed.append(path)
            except OSError:
                pass
        except TrainerError as exc:
            found.append(Found(path, None, str(exc)))
    return found, removed


def ago(seconds: float) -> str:
    """``40 s``, ``5 min``, ``3 h``, ``2 days``."""
    seconds = max(0.0, seconds)
    for unit, size in (("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= 2 * size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"


def describe(hello: p.Hello, now: float | None = None) -> str:
    """``not_gate.py  step 3  pid 123  started 5 min ago  detached 2 min ago (ends in 28 min)``."""
    now = time.time() if now is None else now
    parts = [hello.scenario, f"step {hello.step}", f"pid {hello.pid}", f"started {ago(now - hello.started)} ago"]
    if hello.client is not None:
        parts.append(f"client: {hello.client}")
    elif hello.alone_since is not None:
        alone = now - hello.alone_since
        parts.append(f"no client for {ago(alone)}" + (
            f" (ends in {ago(hello.detach_timeout_s - alone)})" if hello.detach_timeout_s else " (waits forever)"))
    if hello.listening:
        parts.append("--listen")
    return "  ".join(parts)


def list_trainers(out: TextIO, err: TextIO) -> int:
    """``gdtui --connect --status`` (no path): the user's trainers, one a line; stale sockets removed.
    Status 0 when there is one or more, 1 when there is none."""
    try:
        folder = p.socket_dir()
        found, removed = find_trainers(folder)
    except (p.ProtocolError, OSError) as exc:
        print(f"gdtui --connect: {exc}", file=err)
        return 2
    for path in removed:
        print(f"removed a stale socket: {path}", file=out)
    if not found:
        print(f"no trainer is running in {folder}", file=out)
        return 1
    for f in found:
        print(f"{f.path}  {describe(f.hello) if f.hello else f.problem}", file=out)
    answering = [f for f in found if f.hello is not None]
    if len(answering) == 1:
        print(f"gdtui --connect {answering[0].path} would connect to it", file=out)
    return 0


def pick_trainer(out: TextIO, err: TextIO) -> str | None:
    """``gdtui --connect`` with no path: the socket of the only trainer that answers, or None after
    saying why not (none runs; several do: they are listed, to name one). Stale sockets are removed."""
    try:
        folder = p.socket_dir()
        found, removed = find_trainers(folder)
    except (p.ProtocolError, OSError) as exc:
        print(f"gdtui --connect: {exc}", file=err)
        return None
    for path in removed:
        print(f"removed a stale socket: {path}", file=out)
    answering = [f for f in found if f.hello is not None]
    if len(answering) == 1:
        return answering[0].path
    if not found:
        print(f"no trainer is running in {folder}", file=out)
        return None
    for f in found:
        print(f"{f.path}  {describe(f.hello) if f.hello else f.problem}", file=out)
    print(f"{len(answering)} trainers answer; name one: gdtui --connect PATH", file=out)
    return None


def remote_steps(path: str, steps: int | None, out: TextIO, err: TextIO, step_line: Callable[[p.StepRecord], str],
                 quiet: bool = False) -> int:
    """``gdtui --connect PATH --status`` (``steps`` None): check the trainer answers and print its
    status. ``gdtui --connect PATH --headless --steps N``: attach, step N, print a line a step (and
    the trainer's output) as a headless run does, and detach, leaving it paused. Exit statuses as a
    headless run's."""
    try:
        hello = trainer_status(path, timeout=ANSWER_TIMEOUT_S)
    except TrainerError as exc:
        print(f"gdtui --connect: {exc}", file=err)
        return 2
    if steps is None:
        print(f"{path}  {describe(hello)}", file=out)
        return 0
    try:
        client = TrainerClient.connect(path, name="gdtui --connect --headless")
    except TrainerError as exc:
        print(f"gdtui --connect: {exc}", file=err)
        return 2
    try:
        first = client.wait_for((p.Opened, p.LoadFailed), ANSWER_TIMEOUT_S * 6)
        if not isinstance(first, p.Opened):
            print(f"gdtui --connect: {getattr(first, 'error', None) or first.how}", file=err)
            return 2
        client.send(p.Step(steps))
        record, status = first.state.last, 0
        while True:
            event = client.next_event()
            if isinstance(event, p.Output):
                for _, text in event.lines:
                    print(text, file=out)
            elif isinstance(event, p.Stepped):
                record = event.record
                if not quiet:
                    print(step_line(record), file=out, flush=True)
            elif isinstance(event, p.Error):
                print(event.message, file=err)
                status = 2
            elif isinstance(event, p.Stopped):
                if event.reason == "nonfinite":
                    print(event.message, file=err)
                    status = 3
                elif event.reason != "limit":
                    print(event.message or f"stopped: {event.reason}", file=err)
                    status = status or 2
            elif isinstance(event, p.Frame):
                break
            elif isinstance(event, Ended):
                print(f"gdtui --connect: {event.detail or event.how}", file=err)
                return 2
        if quiet:
            print(step_line(record) if record else "0 steps", file=out)
        return status
    except KeyboardInterrupt:
        return 130  # the trainer pauses when this client goes away
    finally:
        client.detach()


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


def _read_some(fd: int) -> bytes:
    """One read of the trainer's pseudo-terminal; b"" when another reader took it first."""
    try:
        return os.read(fd, 1 << 16)
    except (BlockingIOError, InterruptedError):
        return b""
    except OSError:  # EIO: every writer is gone
        return b""


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
