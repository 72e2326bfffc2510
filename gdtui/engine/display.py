"""What a screen is shown of a session besides its state: the chart views and their data, one
tensor's detail, the one-line notices of a stopped run, and the trace log a screen's session keeps.

Both ends that serve a screen build these here: the trainer process (gdtui.trainer) and the
in-process port (gdtui.jobs). Neither keeps a copy.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

from gdtui.engine import charts
from gdtui.engine.chart_records import ChartFrame, Histogram
from gdtui.engine.records import SessionState, StepRecord, TensorView
from gdtui.engine.trace import TraceWriter

if TYPE_CHECKING:
    from gdtui.engine.runner import Stopped
    from gdtui.engine.session import Session

#: The detail view lists up to this many values; a larger tensor gets histograms.
DETAIL_LIST_MAX = 100


class ChartSource:
    """The chart of one session: which views apply, and the data of the current one.

    ``shown`` (the view and the width) is set by the screen's Chart command, as one value (see
    :meth:`show`), which a run in progress reads once for its next frame; the landscape's axes
    are kept from one frame to the next. ``views`` is ("loss",) until :meth:`describe`.
    """

    def __init__(self, session: Session):
        self.session = session
        self.shown: tuple[str, int] = ("loss", charts.CHART_WIDTH)
        self.views: tuple[str, ...] = ("loss",)
        self._landscape: charts.LossLandscape | None = None

    def show(self, view: str, width: int) -> None:
        """Draw ``view``, ``width`` columns wide, from the next frame: one reference replaced, so a
        frame drawn meanwhile has the old pair or the new one."""
        self.shown = (view, width)

    @property
    def view(self) -> str:
        return self.shown[0]

    @view.setter
    def view(self, view: str) -> None:
        self.shown = (view, self.shown[1])

    @property
    def width(self) -> int:
        return self.shown[1]

    @width.setter
    def width(self, width: int) -> None:
        self.shown = (self.shown[0], width)

    def describe(self) -> tuple[str, ...]:
        """The views that apply to the scenario (again after a reset)."""
        session = self.session
        sc, tensors = session.scenario, session.loop.tensors
        views = ["loss"]
        if charts.fit_kind(sc) is not None:
            views.append("fit")
        if session.scalar_path is not None and charts.landscape_applies(sc, tensors):
            views.append("landscape")
        self._landscape = None
        self.views = tuple(views)
        return self.views

    def frame(self) -> ChartFrame:
        session, (view, width) = self.session, self.shown
        if view not in self.views:
            view = "loss"  # a view of the scenario before a reset
        sc, tensors = session.scenario, session.loop.tensors
        if view == "fit":
            payload = charts.model_fit(sc, tensors)
        elif view == "landscape" and session.scalar_path is not None:
            payload = charts.loss_landscape(sc, session.loop.names, tensors, session.scalar_path, self._landscape)
            self._landscape = payload or self._landscape
        else:
            view, payload = "loss", charts.loss_series(session.losses, width)
        return ChartFrame(view, payload, session.step_count)


def detail(session: Session, name: str) -> tuple[TensorView, TensorView | None, Histogram | None, Histogram | None, str]:
    """One tensor's value and the gradient to show (the state's ``shown_grads``: the table's), with
    histograms when it is too large to list, and which gradient that is (ShownGrads.label).
    KeyError when no tensor has that name."""
    import torch

    state = session.state()
    shown = state.shown_grads
    value, grad = state.params[name], shown.views.get(name)
    value_hist = grad_hist = None
    if value.flat is None or value.numel > DETAIL_LIST_MAX:
        tensor = session.loop.tensors[session.loop.names.index(name)]
        value_hist = charts.histogram(tensor)
        if not shown.used:
            if tensor.grad is not None:
                grad_hist = charts.histogram(tensor.grad)
        elif (used := session.used_grad(name)) is not None:
            grad_hist = charts.histogram(used)  # the live gradient was zeroed; the session kept the one the update used
        elif grad is not None and grad.flat is not None:
            # the live gradient was zeroed; the record kept the values the update used
            grad_hist = charts.histogram(torch.tensor(grad.values, dtype=torch.float64))
    return value, grad, value_hist, grad_hist, shown.label


def nonfinite_notice(record: StepRecord | None) -> str | None:
    if record is None or record.nonfinite is None:
        return None
    where = f", first in {record.origin}" if record.origin else ""
    return f"{record.nonfinite} went non-finite (NaN or Inf) at step {record.step}{where}; b rewinds, - lowers the lr"


def break_notice(stopped: Stopped) -> str:
    """The stop conditions that held after the run's last step, by name: breakpoints (k), --break, --until."""
    return f"{', '.join(stopped.hits)} holds after step {stopped.record.step} (k edits the breakpoints)"


def stop_notice(stopped: Stopped) -> str | None:
    """The line a screen shows for a run that stopped: a NaN/Inf, a stop condition that held, or
    the replay note of a step that ran again differently."""
    notice = None
    if stopped.reason == "nonfinite":
        notice = nonfinite_notice(stopped.record)
    elif stopped.reason == "condition":
        notice = break_notice(stopped)
    return notice or stopped.note


def failure_line(exc: BaseException) -> str:
    """An engine failure (not the scenario's: those are ScenarioError and StepError) as one line."""
    return f"gdtui: {type(exc).__name__}: {exc}"


class TraceLog:
    """A screen's trace: start on load, every step as it finishes, rewinds and resets, end on quit.

    Always kept, so the steps so far can be exported: to the user's --trace file,
    else to a temporary file in the system's temp folder, removed on quit, where
    tensors over EXPORT_LOG_MAX_ELEMENTS elements are written as their summary, and no tensors
    once it holds EXPORT_LOG_TENSOR_BYTES. Written
    from the worker and the UI thread, so under a lock; nothing after the end line.
    ``lazy``: the temporary file keeps steps in memory until :meth:`write_pending` (see
    TraceWriter.lazy), for an owner that calls it while idle (the trainer).
    """

    def __init__(self, trace: TraceWriter | None, seed: int, max_elements: int = 4096, lazy: bool = False):
        self.seed = seed
        self._lock = threading.Lock()
        self._ended = False
        self._own: Path | None = None
        log = trace if trace is not None and not trace.csv else None  # export reads JSON Lines
        if log is None:
            try:
                log = TraceWriter.export_log(max_elements, lazy=lazy)
                self._own = log.path
            except OSError:
                log = None  # no temp folder to write to: the app runs, export says why it cannot
        #: The log that export reads: the user's --trace file, else (none, or a CSV one) a temporary one.
        self.trace = log
        self._writers = [w for w in (trace, log if log is not trace else None) if w is not None]
        #: The user asked for a trace (--trace): every step goes in it in full, none light.
        self.detailed = trace is not None

    @property
    def path(self) -> Path | None:
        return self.trace.path if self.trace is not None else None

    @property
    def writers(self) -> tuple[TraceWriter, ...]:
        """Every trace file this log writes: the user's --trace and the log export reads."""
        return tuple(self._writers)

    def kept(self) -> list[tuple[Path, str]]:
        """What an export must never replace: every trace being written, the user's --trace too
        when the export reads a temporary log (a CSV --trace): replacing it would unlink the
        file the run appends to."""
        return [(w.path, "the trace being written") for w in self._writers]

    def take_error(self) -> str | None:
        """Why a trace stopped being written (a full disk), the first time it is asked; else None."""
        with self._lock:
            return next((e for e in (w.take_error() for w in self._writers) if e), None)

    def tensors_left_out(self) -> str | None:
        """Why the log's later steps have no tensors (the temporary log grew past its size), or None."""
        trace = self.trace
        if trace is None or trace.tensors_left_out_from is None:
            return None
        return (f"the log kept no tensors from step {trace.tensors_left_out_from} on (it passed "
                f"{trace.tensor_bytes / 2**20:g} MB): start gdtui with --trace FILE to keep every step's")

    def start(self, state: SessionState, *, reset: bool = False) -> None:
        """The start line; after a reset, a reset line first, so no earlier step counts."""
        with self._lock:
            for trace in self._writers if not self._ended else ():
                if reset:
                    trace.reset()
                trace.start(scenario=state.path, seed=self.seed, device=state.device, mode=state.mode,
                            params=dict(state.params))

    def step(self, record: StepRecord) -> None:
        with self._lock:
            for trace in self._writers if not self._ended else ():
                trace.step(record)

    @property
    def pending(self) -> int:
        """Steps kept in memory that the log has not written yet (see TraceWriter.lazy)."""
        return self.trace.pending if self.trace is not None else 0

    def write_pending(self, most: int | None = None) -> None:
        """Write the oldest ``most`` steps the log keeps in memory (None: all): a trainer with
        nothing to do writes them, so the steps of a run never wait on the log."""
        with self._lock:
            if self.trace is not None:
                self.trace.write_pending(most)

    def flush(self) -> None:
        """Every line so far to the file, for a reader."""
        with self._lock:
            if self.trace is not None:
                self.trace.flush()

    def rewind(self, step: int) -> None:
        """The steps after ``step`` no longer count."""
        with self._lock:
            for trace in self._writers if not self._ended else ():
                trace.rewind(step)

    def end(self, session: Session | None, error: str | None = None) -> None:
        """``steps`` when the scenario's own step count was reached, else ``interrupted``;
        ``error`` (with the message) when the scenario failed to open.

        The temporary trace (no --trace given) is closed and removed.
        """
        with self._lock:
            if not self._writers or self._ended:
                return
            self._ended = True
            for trace in self._writers:
                if session is None:  # it never opened: it failed to, or the user quit while it was opening
                    trace.end(0, "error" if error else "interrupted", error)
                else:
                    steps, target = session.step_count, session.scenario.steps
                    trace.end(steps, "steps" if target and steps >= target else "interrupted")
            if self._own is not None:
                self.trace.close()
                self._own.unlink(missing_ok=True)


def apply_controls(session: Session, c) -> None:
    """A set_controls command (gdtui.protocol.SetControls) applied to ``session``: every field that
    is not None, as one new Controls value, which the session reads as the next step starts.
    Raises ValueError, ConditionError or ScenarioError (one line) for one it cannot apply; then
    nothing changes."""
    session.set_controls(session.panel.with_(
        mode=c.mode, grad_source=c.grad_source, lr=c.lr, lr_scale=getattr(c, "lr_scale", None),
        skip_zero_grad=c.skip_zero_grad, conditions=c.conditions))
