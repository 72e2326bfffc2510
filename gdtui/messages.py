"""Every message the step-debugger's worker thread sends to the screen.

They carry frozen engine records and plain data only, never a live tensor, so
the screen can read them while the worker goes on stepping. SessionOpened is
the one exception: it hands the app the session the worker opened, which the
app then gives only to its jobs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from textual.message import Message

from gdtui.engine.charts import ChartFrame, Histogram
from gdtui.engine.records import SessionState, TensorView

if TYPE_CHECKING:
    from gdtui.engine.session import Session
    from gdtui.jobs import SessionJobs


@dataclass
class SessionOpened(Message):
    """The worker opened the scenario: the session to step from now on (only the worker steps it).

    ``warning`` is the part of the set-up that could not be applied (a
    command-line breakpoint naming an unknown tensor), or None.
    """

    session: Session
    jobs: SessionJobs
    views: tuple[str, ...]
    state: SessionState
    warning: str | None = None


@dataclass
class OpenFailed(Message):
    """The scenario did not load: its one-line error (file:line: what; how to fix)."""

    error: str


@dataclass
class SessionUpdate(Message):
    """The session moved (step, phase, rewind, reset) or a run made progress.

    ``final`` is False for the progress reports of a run: a newer update replaces
    one of those still waiting in the queue, so a fast run cannot flood the
    screen. The last update of every job is final and is never dropped.
    """

    state: SessionState
    chart: ChartFrame | None = None  # a ChartFrame, or None when the chart need not change
    final: bool = True
    error: str | None = None  # a StepError / ScenarioError line to show
    notice: str | None = None  # a one-line remark (paused on NaN, nothing to rewind)
    steps_per_s: float | None = None  # in run mode
    views: tuple[str, ...] | None = None  # the chart views that apply, after a reset

    def can_replace(self, message: Message) -> bool:
        return not self.final and isinstance(message, SessionUpdate)


@dataclass
class ChartReady(Message):
    """Data for the chart's current view, computed in the worker (the view key changed)."""

    frame: ChartFrame


@dataclass
class DetailData(Message):
    """What the detail screen of one tensor shows."""

    name: str
    value: TensorView
    grad: TensorView | None
    value_hist: Histogram | None
    grad_hist: Histogram | None


@dataclass
class DiagnosticReport(Message):
    """What a diagnostic (gradient check, manual vs optimizer, optimizer state) found, as lines of text.

    ``error`` is the scenario's one-line error when the diagnostic could not run.
    """

    kind: str  # "gradcheck", "compare" or "optimizer_state"
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
