"""The trainer port (gdtui.port) over a trainer process: the app's port by default.

:class:`ClientPort` starts ``python -m gdtui.trainer`` (or connects to a listening one, ``gdtui
--connect PATH``) through gdtui.client, sends it the app's commands, and turns the trainer's
events into the same gdtui.messages that the in-process port (gdtui.jobs) posts: a thread reads
the events and posts each as its message. The app's process never imports torch: the trainer
alone does.

The trainer ends each queued command with ``done``: that is the port's CommandDone. When the
trainer dies (a segfault, ``os._exit``, a kill for memory) the port posts TrainerEnded with how it
ended and its last output lines, and a CommandDone for each command it had not finished; the
next start (``r``) starts a new trainer. This module imports no torch.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from gdtui import protocol as p
from gdtui.client import Ended, TrainerClient, TrainerError
from gdtui.messages import (
    ChartReady,
    CheckProgress,
    CommandDone,
    CommandFailed,
    ControlsChanged,
    ControlsRefused,
    DetailData,
    DiagnosticReport,
    ExportDone,
    Frame,
    LoadFailed,
    Opened,
    RunProgress,
    TrainerEnded,
    TrainerOutput,
)


@dataclass(frozen=True)
class Detached:
    """Where a detached trainer waits: its socket, pid and scenario, and how long it waits with
    no screen (None: forever, a --listen trainer)."""

    path: str
    pid: int
    scenario: str
    wait_s: float | None


#: Each diagnostic's key action and title, by its command's type.
_DIAGNOSTICS = {"gradient_check": ("gradcheck", "gradient check"),
                "compare": ("compare", "manual update vs optimizer.step()"),
                "optimizer_state": ("optimizer_state", "optimizer state")}
#: How long q waits for a trainer to end before it kills the trainer's process group.
QUIT_WAIT_S = 2.0
#: The commands that act at once: the trainer answers them with no ``done``.
_AT_ONCE = (p.Pause, p.Interrupt, p.SetControls)


class ClientPort:
    """The app's port on a trainer process: one this port starts (``scenario`` with the trainer's
    ``flags`` and the scenario's ``args``), or the one listening at ``connect``.

    ``listening``: the trainer was started with --listen (q on its screen asks first).
    """

    #: ctrl+c during a step interrupts it (the trainer rolls it back) rather than quitting.
    can_interrupt = True

    def __init__(self, scenario: str | None = None, *, flags: Sequence[str] = (), args: Sequence[str] = (),
                 connect: str | None = None, python: str = sys.executable, env: dict | None = None):
        self.scenario = scenario
        self.flags = tuple(flags)
        self.args = tuple(args)
        self.connect = connect
        self.python = python
        self.env = env
        self.trace_path: str | None = None
        self.client: TrainerClient | None = None
        self.listening = False
        self._app = None
        self._pending: deque = deque()  # queued commands sent, whose done has not come
        self._lock = threading.Lock()
        self._opened = False  # the scenario opened once on this screen: a later Opened is a reset
        self._starting = False  # started or connected, and the trainer's first Opened or LoadFailed is to come
        self._detached = False

    @property
    def pid(self) -> int | None:
        """The trainer's process id (a started or connected one), or None."""
        return self.client.hello.pid if self.client is not None else None

    def bind(self, app) -> None:
        self._app = app

    def _post(self, message) -> None:
        self._app.post_message(message)

    # --- the port -------------------------------------------------------------------------------

    def start(self) -> None:
        """Start (or connect to) a trainer in a thread: Opened or LoadFailed, then CommandDone.
        With a trainer still there (its scenario did not load), it loads the scenario again."""
        if self.client is not None:
            self.send(p.Reset())
            return
        self._opened = False
        self._starting = True  # the first Opened or LoadFailed ends the start
        threading.Thread(target=self._start, name="gdtui-trainer-start", daemon=True).start()

    def _start(self) -> None:
        name = f"gdtui screen ({os.path.basename(sys.argv[0]) or 'python'})"
        try:
            client = self.open_client(name)
        except TrainerError as exc:
            self._starting = False
            what = f"could not connect to {self.connect}" if self.connect is not None else "the trainer did not start"
            self._post(LoadFailed(f"gdtui: {what}: {exc}"))
            self._post(CommandDone(p.Reset()))
            return
        self.client = client
        self.listening = client.hello.listening
        self._read(client)

    def open_client(self, name: str) -> TrainerClient:
        """Start the trainer, or connect to the one at ``connect``: the client whose events this port
        reads (``next_event``, ending with Ended) and to which it sends commands. TrainerError when
        there is none. Tests put a trainer of hand-made events here (tests/app/fake_trainer.py)."""
        if self.connect is not None:
            return TrainerClient.connect(self.connect, name=name)
        return TrainerClient.start(self.scenario, flags=self.flags, args=self.args, python=self.python,
                                   env=self.env, name=name)

    def send(self, command: object) -> None:
        client = self.client
        if isinstance(command, p.Quit):
            self.close()
            return
        if client is None:
            if not isinstance(command, _AT_ONCE):
                self._post(CommandFailed("the trainer is not running; r starts a new one"))
                self._post(CommandDone(command))
            return
        if not isinstance(command, _AT_ONCE):
            with self._lock:
                self._pending.append(command)
        if isinstance(command, p.Step) and command.records:
            command = dataclasses.replace(command, records=False)  # the screen shows the final frame only
        try:
            client.send(command)
        except OSError:
            pass  # the trainer is gone: the reader posts TrainerEnded and finishes the commands

    @property
    def socket_path(self) -> str | None:
        """The socket of the trainer this port is attached to (``d`` detaches from it), or None."""
        client = self.client
        return client.path if client is not None else None

    def detach(self) -> Detached | None:
        """Leave the trainer running, paused, for the next screen (``d``): where it waits, or None
        when no trainer is attached. A trainer this port started is then a detached trainer: it
        ends after its detach timeout with no screen."""
        client, self.client = self.client, None
        if client is None:
            return None
        self._detached = True
        client.detach()
        hello = client.hello
        return Detached(client.path, hello.pid, hello.scenario, hello.detach_timeout_s)

    def close(self) -> None:
        """End the trainer and leave no process behind: Quit, then its process group is killed if
        it has not ended within QUIT_WAIT_S (a step stuck in the user's code)."""
        client, self.client = self.client, None
        if client is None:
            return
        self._detached = True
        if client.process is None:
            try:
                client.send(p.Quit())
            except OSError:
                pass
            client.detach()
            return
        client.quit(timeout=QUIT_WAIT_S)

    # --- events -> messages ---------------------------------------------------------------

    def _read(self, client: TrainerClient) -> None:
        while True:
            event = client.next_event()
            if isinstance(event, Ended):
                self._ended(event)
                return
            try:
                self._event(event)
            except Exception as exc:  # noqa: BLE001 - a message the screen cannot take: said, never fatal
                self._post(CommandFailed(f"gdtui: {type(exc).__name__}: {exc}"))

    def _head(self) -> object | None:
        with self._lock:
            return self._pending[0] if self._pending else None

    def _event(self, event) -> None:
        post, kind = self._post, type(event)
        if kind is p.Done:
            with self._lock:
                command = self._pending.popleft() if self._pending else None
            if command is not None:
                post(CommandDone(command))
        elif kind is p.Frame:
            if event.final:
                post(Frame(event.state, event.chart, notice=event.notice, steps_per_s=event.steps_per_s))
            else:
                post(RunProgress(event.state, event.chart, event.steps_per_s))
        elif kind is p.Output:
            post(TrainerOutput(event.lines))
        elif kind is p.Progress:
            post(CheckProgress(event.done, event.total, event.name))
        elif kind is p.Opened:
            self.trace_path = event.trace
            post(Opened(event.state, tuple(event.views), event.warning, reset=self._opened))
            self._opened = True
            self._started()
        elif kind is p.LoadFailed:
            post(LoadFailed(event.error))
            self._started()
        elif kind is p.Controls:
            post(ControlsChanged(event.mode, event.grad_source, event.lr, event.notes, event.skip_zero_grad,
                                 event.conditions, event.until))
        elif kind is p.Error:
            if event.command == "set_controls":
                post(ControlsRefused(event.message))
            elif event.command in _DIAGNOSTICS:
                post(DiagnosticReport(*_DIAGNOSTICS[event.command], (), error=event.message))
            else:
                post(CommandFailed(event.message))
        elif kind is p.Report:
            if event.kind == "export":
                post(ExportDone(" ".join(event.lines), ok=event.ok))
            elif event.kind in _DIAGNOSTICS:
                post(DiagnosticReport(*_DIAGNOSTICS[event.kind], tuple(event.lines)))
        elif kind is p.Stopped:
            if event.reason == "interrupted" and isinstance(self._head(), p.GradientCheck):
                post(DiagnosticReport("gradcheck", "gradient check", (), cancelled=True))
        elif kind is p.DetailData:
            post(DetailData(event.name, event.value, event.grad, event.value_hist, event.grad_hist, event.grad_of))
        elif kind is p.ChartReady:
            post(ChartReady(event.frame))

    def _started(self) -> None:
        """The start's end: the trainer's first Opened or LoadFailed (a connection's, on a trainer
        that loaded long ago, too)."""
        if self._starting:
            self._starting = False
            self._post(CommandDone(p.Reset()))

    def _ended(self, ended: Ended) -> None:
        """The connection ended: unless this screen left (q, d), the trainer's end is told, and
        every command it had not finished ends."""
        if self.client is not None:
            self.client = None
        with self._lock:
            unfinished = list(self._pending)
            self._pending.clear()
        if self._starting:
            self._starting = False
            unfinished.append(p.Reset())
        if not self._detached:
            self._post(TrainerEnded(ended.detail or ended.how, ended.last_lines))
        for command in unfinished:
            self._post(CommandDone(command))
        self._detached = False


def trainer_flags(*, seed: int = 0, device: str = "cpu", history_mb: float = 256, mode: str | None = None,
                  lr: float | None = None, grad_source: str | None = None, trace: str | None = None,
                  trace_max_elements: int = 4096, gradcheck_samples: int = 4, until: str | None = None,
                  breaks: Sequence[str] = (), stop_on_rise: int | None = None, no_zero_grad: bool = False,
                  detach_timeout: float | None = None) -> list[str]:
    """The trainer's command line for these session settings (see ``python -m gdtui.trainer --help``)."""
    flags = ["--seed", str(seed), "--device", device, "--history-mb", repr(float(history_mb)),
             "--trace-max-elements", str(trace_max_elements), "--gradcheck-samples", str(gradcheck_samples)]
    for flag, value in (("--mode", mode), ("--lr", None if lr is None else repr(float(lr))),
                        ("--grad-source", grad_source), ("--trace", trace), ("--until", until),
                        ("--stop-on-rise", None if stop_on_rise is None else str(stop_on_rise)),
                        ("--detach-timeout", None if detach_timeout is None else repr(float(detach_timeout)))):
        if value is not None:
            flags += [flag, value]
    for text in breaks:
        flags += ["--break", text]
    if no_zero_grad:
        flags.append("--no-zero-grad")
    return flags
