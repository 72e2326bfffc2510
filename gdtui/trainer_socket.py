"""The trainer's socket and its output: one client at a time, and the pseudo-terminal behind fds 1 and 2.

gdtui.trainer runs the commands; this module serves them. :class:`ClientLink` owns the
listening socket and the one attached connection:

* an acceptor takes connections: each gets the hello (the trainer's status) with a copy of the
  pseudo-terminal's reading end; a second client while one is attached is refused, with a line
  naming the attached one;
* one reader a connection hands its commands to the trainer (``on_command``); a client that goes
  away sets ``stop`` (a run pauses) and leaves the trainer waiting for the next;
* ``send`` writes one message to the attached client, if any; ``send_latest`` hands a run's frame
  to a writer thread that keeps only the latest one, so a run never waits on the socket.

:class:`OutputCapture` puts fds 1 and 2 onto a pseudo-terminal. One reader at a time reads its
other end: a thread of this process while no client is attached, the client while one is (see
docs/protocol.md). The main thread writes a mark into it at each step's start, so the reader
knows exactly where each step's output begins, whichever thread or process wrote it.
"""

from __future__ import annotations

import io
import os
import select
import socket
import stat
import sys
import threading
import time
import tty
from collections import deque
from collections.abc import Callable

from gdtui import __version__
from gdtui import protocol as p
from gdtui.marked_output import MARK, MarkedLines

#: During a run, a step mark is written at least this often (see OutputCapture.mark).
MARK_EVERY_S = 0.005
#: How long a sync waits for the trainer's own output reader.
_SYNC_WAIT_S = 1.0
#: Output lines kept for a client that attaches later, and for the last lines of a trainer that ended.
TAIL_LINES = 500


class SocketInUse(Exception):
    """The socket path cannot be served: one line."""


def bind_socket(path: str) -> socket.socket:
    """A listening Unix socket at ``path``, mode 0600. A stale socket there (nobody answers) is
    replaced; anything else that exists there is refused with SocketInUse."""
    if len(os.fsencode(path)) > 100:
        raise SocketInUse(f"{path}: too long for a Unix socket path; choose a shorter one")
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        info = None
    if info is not None:
        if not stat.S_ISSOCK(info.st_mode):
            raise SocketInUse(f"{path} exists and is not a socket; choose another path")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(path)
        except ConnectionRefusedError:
            os.unlink(path)  # stale: its trainer is gone
        except OSError as exc:
            raise SocketInUse(f"{path}: cannot check the socket there ({exc.strerror})") from None
        else:
            raise SocketInUse(f"{path}: a trainer is already listening there; gdtui --connect {path} opens it")
        finally:
            probe.close()
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)  # no moment when someone else could connect
    try:
        server.bind(path)
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    server.listen(4)
    return server


class OutputCapture:
    """fds 1 and 2 onto a pseudo-terminal, whose other end one reader reads at a time: while no
    client is attached, a thread of this process (into ``tail`` and the sink); while one is, that
    client, from the copy of the reading end it got with the hello. So nothing the user's code
    wrote sits in this process's memory, unsent, when it dies: what the client has not read is
    still in the pseudo-terminal, and the client drains it then."""

    def __init__(self, sink):
        self._sink = sink  # called with a tuple of (step, line), under self.lock
        master, slave = os.openpty()
        tty.setraw(slave)  # no \r\n translation, no echo: bytes arrive as written
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(slave, 1)
        os.dup2(slave, 2)
        os.close(slave)
        self._due: int | None = None  # a step whose mark waits for the step's first output (a run)
        self._mark_after = 0.0  # during a run, the next mark is written at once after this time
        for name in ("stdout", "stderr"):  # a terminal now: lines go out as printed, after a due mark
            old = getattr(sys, name)
            old.flush()
            raw = _MarkFirst(old.fileno(), self)
            setattr(sys, name, io.TextIOWrapper(io.BufferedWriter(raw), encoding=old.encoding, errors=old.errors,
                                                line_buffering=True))
        os.set_blocking(master, False)  # two readers (this process, a client) may wake for one read
        self.master = master
        self.lock = threading.RLock()  # held while bytes are read and turned into lines; then send_lock
        self.tail: deque[tuple[int, str]] = deque(maxlen=TAIL_LINES)
        self.lines = MarkedLines()
        self.marked = 0  # the last step the main thread marked
        self.reading = True  # False while a client reads the pseudo-terminal
        self._may_read = threading.Event()
        self._may_read.set()
        self._throttle = False
        self._synced = threading.Condition()
        self._sync_seen = 0
        self._sync_next = 0
        threading.Thread(target=self._read, name="gdtui-output", daemon=True).start()

    @property
    def throttle(self) -> bool:
        """During a run: the output is read in batches, and a step's mark is written only before
        the step's first line through sys.stdout or sys.stderr, or MARK_EVERY_S after the last
        mark written (see :meth:`mark`). Set False, the due mark is written."""
        return self._throttle

    @throttle.setter
    def throttle(self, on: bool) -> None:
        self._throttle = on
        if not on:
            self.write_due()

    def mark(self, step: int) -> None:
        """From the main thread: what is written from now on belongs to ``step``.

        During a run (``throttle``) the mark waits: what the step writes through sys.stdout or
        sys.stderr (print, logging, warnings) writes it first, and a step that writes nothing leaves
        none, unless MARK_EVERY_S passed since the last one, so that what is written to fds 1 and 2
        directly (os.write, a C extension, a subprocess) is marked with a step at most that old."""
        sys.stdout.flush()
        sys.stderr.flush()
        self.marked = step
        if self._throttle:
            now = time.monotonic()
            if now < self._mark_after:
                self._due = step
                return
            self._mark_after = now + MARK_EVERY_S
        self._due = None
        os.write(1, MARK % step)

    def write_due(self) -> None:
        """The mark of the step in progress, if it waits (before that step's output)."""
        due, self._due = self._due, None
        if due is not None:
            os.write(1, MARK % due)

    def sync(self, send) -> None:
        """From the main thread: a command's output comes before its last event. While this process
        reads the output, wait (a second at most) until its reader has read everything written so
        far; while a client reads it, ``send`` it an OutputSync, and the client does the reading."""
        sys.stdout.flush()
        sys.stderr.flush()
        self._sync_next += 1
        target = self._sync_next
        os.write(1, MARK % -target)
        deadline = time.monotonic() + _SYNC_WAIT_S
        with self._synced:
            while self._sync_seen < target and self.reading and time.monotonic() < deadline:
                self._synced.wait(deadline - time.monotonic())
            handed_over = not self.reading and self._sync_seen < target
        if handed_over:
            send(p.OutputSync(target))

    def hand_over(self) -> tuple[int, bytes]:
        """Under ``lock``: a client reads the output from now on. The step of what follows, and the
        bytes of a line begun."""
        self.reading = False
        self._may_read.clear()
        step, partial = self.lines.step, self.lines.partial
        self.lines = MarkedLines(step)
        with self._synced:
            self._synced.notify_all()
        return step, partial

    def take_back(self) -> None:
        """Under ``lock``: the client went away; this process reads the output again. What that
        client read and did not show is lost with it; the step is the last one marked."""
        self.reading = True
        self.lines = MarkedLines(self.marked)
        self._may_read.set()

    def _read(self) -> None:
        while True:
            self._may_read.wait()
            try:
                ready, _, _ = select.select([self.master], [], [], 0.5)
            except OSError:
                return
            if not ready:
                continue
            with self.lock:
                if not self.reading:
                    continue
                try:
                    data = os.read(self.master, 1 << 16)
                except BlockingIOError:
                    continue
                except OSError:
                    return
                if not data:
                    return
                lines, synced = self.lines.feed(data)
                if lines:
                    self.tail.extend(lines)
                    self._sink(tuple(lines))
                if synced is not None:  # counted before a hand-over can look at it
                    with self._synced:
                        self._sync_seen = max(self._sync_seen, synced)
                        self._synced.notify_all()
            if self.throttle and len(data) < 4096:
                time.sleep(0.005)  # marks of many short steps: one read, not one wake a step


class _MarkFirst(io.FileIO):
    """fd 1 or 2 under sys.stdout or sys.stderr: a write writes the due step mark first."""

    def __init__(self, fd: int, capture: OutputCapture):
        super().__init__(fd, "w", closefd=False)
        self._capture = capture

    def write(self, data) -> int:
        if self._capture._due is not None:
            self._capture.write_due()
        return super().write(data)


class ClientLink:
    """The socket of one trainer and its one attached client. ``on_command`` is called from a
    connection's thread with each command; ``on_attach`` with the number of each client that
    attaches; ``step`` gives the step for the hello; ``stop`` is set when the client goes away."""

    def __init__(self, server: socket.socket, path: str, *, scenario: str, listening: bool,
                 detach_timeout_s: float, step: Callable[[], int], on_command: Callable[[object], None],
                 on_attach: Callable[[int], None], stop: threading.Event):
        self.server = server
        self.path = path
        self.scenario = scenario
        self.listening = listening
        #: Seconds with no client after which the trainer ends; 0: never.
        self.detach_timeout_s = detach_timeout_s
        self._step = step
        self._command = on_command
        self._on_attach = on_attach
        self.stop = stop
        self._client: socket.socket | None = None
        self._client_name = ""
        self._client_since = 0.0  # when it attached (time.time())
        self.started = time.time()
        self._alone_since = time.monotonic()  # no client since then (meaningful while _client is None)
        self._alone_wall = self.started
        self.ending = False  # alone too long: the trainer ends, no client attaches any more
        self._send_lock = threading.Lock()
        #: send_latest's one waiting message, and the count of send()s that would overtake it.
        self._slot_lock = threading.Lock()
        self._slot = None
        self._slot_ready = threading.Event()
        self._generation = 0
        self._writer: threading.Thread | None = None
        self.attached = threading.Event()
        self.attaches = 0  # connections attached so far
        self.output = OutputCapture(lambda lines: self.send(p.Output(lines)))

    def start(self) -> None:
        """Take connections from now on (the acceptor thread)."""
        threading.Thread(target=self.accept, name="gdtui-accept", daemon=True).start()

    # --- sending ----------------------------------------------------------------------------

    def send(self, message) -> None:
        """To the attached client, if any; a client that cannot take it is dropped. A frame that
        ``send_latest`` left waiting is dropped: this message comes after it."""
        data = p.dumps(message)
        with self._send_lock:
            with self._slot_lock:
                self._slot = None
                self._generation += 1
            client = self._client
            if client is None:
                return
            try:
                client.sendall(data)
                return
            except OSError:
                pass
        self._drop(client)

    def send_latest(self, message) -> None:
        """A message that the next one replaces (a run's frame): the writer thread encodes and sends
        it, so the run never waits on the socket; one still waiting when the next comes is dropped."""
        with self._slot_lock:
            self._slot = message
            if self._writer is None:
                self._writer = threading.Thread(target=self._write_latest, name="gdtui-frames", daemon=True)
                self._writer.start()
        self._slot_ready.set()

    def _write_latest(self) -> None:
        while True:
            self._slot_ready.wait()
            with self._slot_lock:
                message, generation, self._slot = self._slot, self._generation, None
                self._slot_ready.clear()
            if message is None:
                continue
            data = p.dumps(message)
            with self._send_lock:
                client = self._client
                if client is None or generation != self._generation:  # a later message went first
                    continue
                try:
                    client.sendall(data)
                    continue
                except OSError:
                    pass
            self._drop(client)

    def _drop(self, client: socket.socket) -> None:
        with self.output.lock, self._send_lock:  # the order _serve takes them in
            if self._client is client:
                self._client = None
                self._alone_since, self._alone_wall = time.monotonic(), time.time()
                self.stop.set()  # a run pauses: the trainer waits for the next client
                self.output.take_back()
        try:
            client.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        client.close()

    # --- connections --------------------------------------------------------------------------

    def accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), name="gdtui-client", daemon=True).start()

    def _hello(self) -> p.Hello:
        """The hello of a new connection, which is also the trainer's status."""
        attached = self._client is not None  # read without the lock: a stuck send holds it
        client = self._client_description() if attached else None
        alone = None if attached else self._alone_wall
        return p.Hello(p.PROTOCOL_VERSION, __version__, os.getpid(), self.scenario, self._step(),
                       started=self.started, client=client, alone_since=alone,
                       detach_timeout_s=self.detach_timeout_s or None, listening=self.listening)

    def _serve(self, conn: socket.socket) -> None:
        """Greet (the hello is the status), then: a Status answer closes the connection; an Attach
        of this version makes it the client, unless one is attached; then read its commands until
        it goes away."""
        try:
            # With the hello, the client gets a copy of the pseudo-terminal's reading end: what the
            # output thread had no time to read before this process died (a segfault) it reads then.
            socket.send_fds(conn, [p.dumps(self._hello())], [self.output.master])
            reader = p.LineReader(conn.recv)
            attach = reader.read()
        except p.VersionMismatch as exc:
            self._refuse(conn, str(exc))
            return
        except (OSError, p.ProtocolError):
            conn.close()
            return
        if attach is None or isinstance(attach, p.Status):
            conn.close()
            return
        if not isinstance(attach, p.Attach):
            self._refuse(conn, "the first message must be attach or status")
            return
        name = f"pid {attach.pid}" + (f" ({attach.name})" if attach.name else "")
        with self.output.lock, self._send_lock:  # no output line between the tail and the live lines
            if self.ending:
                refused = f"trainer pid {os.getpid()} is ending: it had no client for {self.detach_timeout_s / 60:g} min"
            elif self._client is not None:
                refused = self._busy_line()
            else:
                refused = None
                self._client, self._client_name, self._client_since = conn, name, time.time()
                self.attaches += 1
                number = self.attaches
                self.stop.clear()
                step, partial = self.output.hand_over()
                try:
                    conn.sendall(p.dumps(p.Attached(step, partial.decode("latin-1"))))
                    if self.output.tail:
                        conn.sendall(p.dumps(p.Output(tuple(self.output.tail))))
                except OSError:
                    self._client = None
                    self._alone_since, self._alone_wall = time.monotonic(), time.time()
                    self.output.take_back()
                    conn.close()
                    return
        if refused:
            self._refuse(conn, refused)
            return
        self.attached.set()
        self._on_attach(number)
        try:
            while True:
                command = reader.read()
                if command is None:
                    break
                self._command(command)
        except (OSError, p.ProtocolError) as exc:
            self.send(p.Error(f"gdtui protocol: {exc}"))
        self._drop(conn)

    def _client_description(self) -> str:
        from gdtui.client import ago

        since = time.strftime("%H:%M:%S", time.localtime(self._client_since))
        return f"{self._client_name}, attached at {since} ({ago(time.time() - self._client_since)} ago)"

    def _busy_line(self) -> str:
        return (f"trainer pid {os.getpid()} ({self.scenario}) already has a client: "
                f"{self._client_description()}; detach it first")

    def _refuse(self, conn: socket.socket, reason: str) -> None:
        try:
            conn.sendall(p.dumps(p.Refused(reason)))
        except OSError:
            pass
        conn.close()

    def alone_too_long(self) -> bool:
        """No client for detach_timeout_s: from now on none attaches, and the trainer ends."""
        with self._send_lock:
            if self._client is None and self.detach_timeout_s and \
                    time.monotonic() - self._alone_since >= self.detach_timeout_s:
                self.ending = True
        return self.ending
