"""Every message the trainer port (gdtui.port) sends to the screen, one meaning each.

They carry frozen records and plain data only, never a live tensor and never the
session, so the screen can read them while the port goes on stepping, and a port
that talks to a trainer process can post the same ones from its events. Only the
messages that can flood (a run's progress, a gradient check's) replace one another
in the queue (``can_replace``). Every command the port queues ends with exactly one
:class:`CommandDone`, after all of that command's other messages: the one place
where the screen stops being busy.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from gdtui.engine.chart_records import ChartFrame, Histogram
from gdtui.engine.records import SessionState, TensorView


@dataclass
class Opened(Message):
    """The scenario loaded (at start, or again after a reset): the state and the chart views that apply.

    ``warning`` is the part of the set-up that could not be applied (a
    command-line breakpoint naming an unknown tensor), or None.
    """

    state: SessionState
    views: tuple[str, ...]
    warning: str | None = None
    reset: bool = False  # loaded again (the r key), not the first load


@dataclass
class LoadFailed(Message):
    """The scenario did not load: its one-line error (file:line: what; how to fix)."""

    error: str


@dataclass
class Frame(Message):
    """What the session is now, after a command moved it (step, phase, rewind, a run that ended).

    ``notice`` is a one-line remark (paused on NaN, nothing to rewind, a breakpoint
    that held); ``chart`` is None when the chart need not change.
    """

    state: SessionState
    chart: ChartFrame | None = None
    notice: str | None = None
    steps_per_s: float | None = None  # a run's rate


@dataclass
class RunProgress(Message):
    """A run made progress: a newer one replaces one still queued, so a fast run cannot flood the screen."""

    state: SessionState
    chart: ChartFrame | None
    steps_per_s: float | None

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, RunProgress)


@dataclass
class CommandFailed(Message):
    """A command failed (a StepError, a ScenarioError, an engine failure): its one line. The
    session stays usable; the steps queued behind it are dropped."""

    error: str


@dataclass
class ControlsChanged(Message):
    """The controls changed (mode, gradient source, lr, zero_grad, stop conditions): they apply
    from the next step, and the screen shows them at once."""

    mode: str
    grad_source: str
    lr: float
    notes: tuple[str, ...]
    skip_zero_grad: bool
    conditions: tuple[str, ...]
    until: tuple[str, ...]


@dataclass
class ControlsRefused(Message):
    """A control could not be set (no grad_fn, a condition that does not parse): one line."""

    error: str


@dataclass
class ChartReady(Message):
    """Data for the chart's current view (the view or the chart's width changed)."""

    frame: ChartFrame


@dataclass
class DetailData(Message):
    """What the detail screen of one tensor shows."""

    name: str
    value: TensorView
    grad: TensorView | None
    value_hist: Histogram | None
    grad_hist: Histogram | None
    #: Which gradient ``grad`` is (ShownGrads.label): the one the last update used, or the live one.
    grad_of: str = ""


@dataclass
class DiagnosticReport(Message):
    """What a diagnostic (gradient check, manual vs optimizer, optimizer state) found, as lines of text.

    ``error`` is the scenario's one-line error when the diagnostic could not run.
    """

    kind: str  # "gradcheck", "compare" or "optimizer_state": the action of its key
    title: str
    lines: tuple[str, ...]
    error: str | None = None
    cancelled: bool = False  # the user pressed escape: nothing to show, the session is as it was


@dataclass
class CheckProgress(Message):
    """The gradient check reached tensor ``k`` of ``n`` (``name``); a newer one replaces one still queued."""

    k: int
    n: int
    name: str

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, CheckProgress)


@dataclass
class ExportDone(Message):
    """An export finished: ``text`` says how many steps went where, or why nothing was written."""

    text: str
    ok: bool


@dataclass
class CommandDone(Message):
    """The port finished a command it had queued (``command``, a gdtui.protocol command); its
    other messages all came before this one."""

    command: object


@dataclass
class TrainerOutput(Message):
    """Lines the trainer's process wrote (print, C extensions, subprocesses): ``(step, text)``
    pairs, each marked with the step in progress when it was written (0: while loading)."""

    lines: tuple[tuple[int, str], ...]


@dataclass
class TrainerEnded(Message):
    """The trainer process ended without being asked (a segfault, os._exit, a kill for memory):
    ``how`` (its exit status or signal) and its last output lines. r starts a new one."""

    how: str
    last_lines: tuple[str, ...]
