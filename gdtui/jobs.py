"""What the step-debugger's worker thread does: step the session, build the records, post them.

:class:`SessionJobs` runs in the app's thread worker, one job at a time (the app
guards that with its ``busy`` reactive). Every job ends by posting a final
message; a run posts the frames of gdtui.engine.runner.Run, paced by gdtui.engine.pacing.FramePacer.
Nothing here touches a widget: the screen only ever sees frozen records.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable
from pathlib import Path

import torch
from textual.message import Message

from gdtui.engine import charts
from gdtui.engine.compare import compare_updates
from gdtui.engine.errors import ScenarioError
from gdtui.engine.export import ExportError, export_trace
from gdtui.engine.gradcheck import CheckCancelled, gradient_check
from gdtui.engine.loop import StepError
from gdtui.engine.optstate import optimizer_state
from gdtui.engine.pacing import FramePacer
from gdtui.engine.records import SessionState, StepRecord
from gdtui.engine.runner import Frame, Run, Stopped
from gdtui.engine.session import Session
from gdtui.engine.trace import TraceWriter
from gdtui.messages import ChartReady, CheckProgress, DetailData, DiagnosticReport, ExportDone, OpenFailed, SessionOpened, SessionUpdate

#: The detail view lists up to this many values; a larger tensor gets histograms.
DETAIL_LIST_MAX = 100


class TraceLog:
    """The app's trace: start on mount, every step as it finishes, rewinds and resets, end on quit.

    Always kept, so the steps so far can be exported: to the user's --trace file,
    else to a temporary file in the system's temp folder, removed on quit, where
    tensors over EXPORT_LOG_MAX_ELEMENTS elements are written as their summary, and no tensors
    once it holds EXPORT_LOG_TENSOR_BYTES. Written
    from the worker and the UI thread, so under a lock; nothing after the end line.
    """

    def __init__(self, trace: TraceWriter | None, seed: int, max_elements: int = 4096):
        self.seed = seed
        self._lock = threading.Lock()
        self._ended = False
        self._own: Path | None = None
        log = trace if trace is not None and not trace.csv else None  # export reads JSON Lines
        if log is None:
            try:
                log = TraceWriter.export_log(max_elements)
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


def failure_line(exc: BaseException) -> str:
    """An engine failure (not the scenario's: those are ScenarioError and StepError) as one line."""
    return f"gdtui: {type(exc).__name__}: {exc}"


def open_session(load: Callable[[], tuple[Session, str | None]], trace: TraceLog, post: Callable[[Message], object]) -> None:
    """Open the scenario: post SessionOpened (the session, its jobs, views and state, and the
    set-up ``load`` could not apply), or OpenFailed with the one-line error."""
    try:
        session, warning = load()
    except ScenarioError as exc:
        post(OpenFailed(str(exc)))
        return
    except BaseException as exc:  # noqa: BLE001 - an engine failure shows in the panel; the app lives on
        post(OpenFailed(failure_line(exc)))
        return
    jobs = SessionJobs(session, trace, post)
    views, state = jobs.describe()
    post(SessionOpened(session, jobs, views, state, warning))


class SessionJobs:
    """The jobs the keys start; ``post`` sends a message to the app (thread-safe)."""

    def __init__(self, session: Session, trace: TraceLog, post: Callable[[Message], object]):
        self.session = session
        self.trace = trace
        self.post = post
        self.stop = threading.Event()
        self.cancel = threading.Event()  # set by escape during a gradient check
        self.chart_view = "loss"  # set by the app; a run picks a change up with its next post
        self.chart_width = charts.CHART_WIDTH  # set by the app to the chart's width
        self.steps_per_s: float | None = None
        self._landscape: charts.LossLandscape | None = None

    # --- what the screen gets ---------------------------------------------------------------

    def describe(self) -> tuple[tuple[str, ...], SessionState]:
        """The chart views that apply to this scenario, and the state."""
        session = self.session
        sc, tensors = session.scenario, session.loop.tensors
        views = ["loss"]
        if charts.fit_kind(sc) is not None:
            views.append("fit")
        if session.scalar_path is not None and charts.landscape_applies(sc, tensors):
            views.append("landscape")
        self._landscape = None
        return tuple(views), session.state()

    def frame(self) -> charts.ChartFrame:
        session, view = self.session, self.chart_view
        sc, tensors = session.scenario, session.loop.tensors
        if view == "fit":
            payload = charts.model_fit(sc, tensors)
        elif view == "landscape" and session.scalar_path is not None:
            payload = charts.loss_landscape(sc, session.loop.names, tensors, session.scalar_path, self._landscape)
            self._landscape = payload or self._landscape
        else:
            view, payload = "loss", charts.loss_series(session.losses, self.chart_width)
        return charts.ChartFrame(view, payload, session.step_count)

    def update(self, *, final: bool = True, rebuild: bool = False, chart: bool = True, **fields) -> None:
        views, state = self.describe() if rebuild else (None, self.session.state())
        broken = self.trace.take_error() if final else None  # a full disk: said once, never dropped
        if broken:
            fields["notice"] = "; ".join(n for n in (fields.get("notice"), broken) if n)
        self.post(SessionUpdate(state, self.frame() if chart else None, final=final, views=views, **fields))

    # --- the jobs -----------------------------------------------------------------------

    def step(self) -> None:
        self.steps(1)

    def steps(self, n: int) -> None:
        """``n`` steps in a row (the step key pressed n times); a StepError or a NaN/Inf ends them early."""
        self.run(limit=n)

    def phase(self) -> None:
        try:
            record = self.session.step_phase()
        except StepError as exc:
            self.update(error=str(exc))
            return
        if record is not None:
            self.trace.step(record)
        self.update(notice=nonfinite_notice(record) or self.session.take_replay_note())

    def rewind(self) -> None:
        try:
            undone = self.session.rewind(1)
        except StepError as exc:  # a step ran differently again: the session is back at a checkpoint
            self.trace.rewind(self.session.step_count)
            self.update(error=str(exc))
            return
        if undone:
            self.trace.rewind(self.session.step_count)
        self.update(notice=self.session.take_replay_note() if undone else "nothing to rewind")

    def reset(self) -> None:
        # The app froze the start-up objects (gc.freeze) to keep full collections off the
        # key path; the old scenario is among them and its module is a reference cycle, so
        # thaw first, or a reset would never free the old tensors (GPU memory included).
        gc.unfreeze()
        try:
            self.session.reset()
        except ScenarioError as exc:
            self.update(error=f"{exc} (the previous session is kept)")
            return
        finally:
            gc.collect()
            gc.freeze()
        self.trace.start(self.session.state(), reset=True)  # step numbers restart under a reset and start line
        self.update(rebuild=True)

    def chart(self) -> None:
        self.post(ChartReady(self.frame()))

    def detail(self, name: str) -> None:
        state = self.session.state()
        value, grad = state.params[name], state.grads.get(name)
        if state.next_phase == "forward" and state.last is not None:
            grad = state.last.grads.get(name)  # the gradient the last update used
        value_hist = grad_hist = None
        if value.flat is None or value.numel > DETAIL_LIST_MAX:
            tensor = self.session.loop.tensors[self.session.loop.names.index(name)]
            value_hist = charts.histogram(tensor)
            used = self.session.used_grad(name)  # None mid-step
            if state.next_phase != "forward" and tensor.grad is not None:
                grad_hist = charts.histogram(tensor.grad)
            elif used is not None:  # the live gradient was zeroed; the session kept the one the update used
                grad_hist = charts.histogram(used)
            elif grad is not None and grad.flat is not None:
                # the live gradient was zeroed; the record kept the values the update used
                grad_hist = charts.histogram(torch.tensor(grad.values, dtype=torch.float64))
        self.post(DetailData(name, value, grad, value_hist, grad_hist))

    def run(self, limit: int | None = None) -> None:
        """Step until paused (``stop``), a StepError, a NaN/Inf or, with no ``limit``, a breakpoint.

        A continuous run (no ``limit``) pauses where a stop condition holds: the
        breakpoints of the k screen and the command line's --break, --until and
        --stop-on-rise. Queued steps (``limit``) run on, as the key presses asked.
        The steps are gdtui.engine.runner.Run's; this only posts what it yields.
        """
        run = Run(self.session, limit, schedule=FramePacer(detail=self.trace.detailed), trace=self.trace,
                  conditions=limit is None, paused=self.stop.is_set)
        for event in run:
            if type(event) is Frame:
                self.update(final=False, chart=event.chart, steps_per_s=event.steps_per_s)
                self.steps_per_s = event.steps_per_s
        stopped = run.stopped
        notice = None
        if stopped.reason == "nonfinite":
            notice = nonfinite_notice(stopped.record)
        elif stopped.reason == "condition":
            notice = break_notice(stopped)
        self.update(error=stopped.error, notice=notice or stopped.note,
                    steps_per_s=self.steps_per_s if limit is None else None)

    # --- diagnostics and export: results as messages ---------------------------------------

    def gradcheck(self) -> None:
        self.cancel.clear()

        def check(session: Session):
            return gradient_check(session, progress=lambda k, n, name: self.post(CheckProgress(k, n, name)),
                                  cancelled=self.cancel.is_set)

        try:
            self._report("gradcheck", "gradient check", check)
        except CheckCancelled:
            self.post(DiagnosticReport("gradcheck", "gradient check", (), cancelled=True))

    def compare(self) -> None:
        self._report("compare", "manual update vs optimizer.step()", compare_updates)

    def optimizer_state(self) -> None:
        self._report("optimizer_state", "optimizer state", optimizer_state)

    def _report(self, kind: str, title: str, diagnose: Callable) -> None:
        try:
            lines = tuple(diagnose(self.session).lines())
        except (ScenarioError, StepError) as exc:
            self.post(DiagnosticReport(kind, title, (), error=str(exc)))
            return
        self.post(DiagnosticReport(kind, title, lines))

    def export(self, out: str) -> None:
        """The current timeline of the trace log to ``out`` (CSV for a .csv path, else JSON Lines)."""
        if self.trace.path is None:
            self.post(ExportDone("no trace log to export: the system's temp folder is not writable; "
                                 "start gdtui with --trace FILE", ok=False))
            return
        self.trace.flush()
        try:
            n = export_trace(self.trace.path, out, kept=[(self.session.file, "the open scenario")])
        except ExportError as exc:
            self.post(ExportDone(str(exc), ok=False))
            return
        text = f"wrote {n} step{'' if n == 1 else 's'} to {out}"
        left_out = self.trace.tensors_left_out()
        self.post(ExportDone(f"{text}; {left_out}" if left_out else text, ok=True))


def nonfinite_notice(record: StepRecord | None) -> str | None:
    if record is None or record.nonfinite is None:
        return None
    return f"{record.nonfinite} went non-finite (NaN or Inf) at step {record.step}; b rewinds, - lowers the lr"


def break_notice(stopped: Stopped) -> str:
    """The stop conditions that held after the run's last step, by name: breakpoints (k), --break, --until."""
    return f"{', '.join(stopped.hits)} holds after step {stopped.record.step} (k edits the breakpoints)"
