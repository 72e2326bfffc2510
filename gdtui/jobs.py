"""The in-process trainer port: the engine stepped in a thread worker of the app.

:class:`InProcessPort` is a port (see gdtui.port) for tests that compare ``app.port.session``
with a plain loop (:func:`make_app`); the app's own port is gdtui.client_port, on a trainer
process. It takes gdtui.protocol's commands, runs the queued ones one at a time in a thread
worker, and posts gdtui.messages back. It is the only module of the screen's side that
imports the engine's tensor code and holds a Session. The chart, a tensor's detail, the
notices and the trace log are gdtui.engine.display's, shared with the trainer.

:class:`SessionJobs` is what one command does to the session: step it, build the
records, post them. A run posts the frames of gdtui.engine.runner.Run, paced by
gdtui.engine.pacing.FramePacer. Nothing here touches a widget: the screen only ever
sees frozen records.
"""

from __future__ import annotations

import gc
import threading
from collections import deque
from collections.abc import Callable

from textual.message import Message

from gdtui import protocol as p
from gdtui.engine import display
from gdtui.engine.chart_records import ChartFrame
from gdtui.engine.charts import CHART_WIDTH
from gdtui.engine.compare import compare_updates
from gdtui.engine.conditions import ConditionError
from gdtui.engine.display import ChartSource, TraceLog, apply_controls, failure_line, nonfinite_notice
from gdtui.engine.errors import ScenarioError
from gdtui.engine.export import ExportError, export_trace
from gdtui.engine.gradcheck import CheckCancelled, gradient_check
from gdtui.engine.loop import StepError
from gdtui.engine.optstate import optimizer_state
from gdtui.engine.pacing import FramePacer
from gdtui.engine.records import SessionState
from gdtui.engine.runner import Frame as RunFrame
from gdtui.engine.runner import Run, step_phase
from gdtui.engine.session import Session
from gdtui.engine.trace import TraceWriter
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
)


class SessionJobs:
    """What each command does to the session; ``post`` sends a message to the app (thread-safe).

    One job at a time (InProcessPort queues them); ``stop``, ``cancel`` and the chart's view
    and width are set by the port's commands that act at once (Pause, Interrupt, Chart).
    """

    def __init__(self, session: Session, trace: TraceLog, post: Callable[[Message], object]):
        self.session = session
        self.trace = trace
        self.post = post
        self.stop = threading.Event()
        self.cancel = threading.Event()  # set by escape during a gradient check
        #: The chart's views and data; its view and width are set by the Chart command (a run
        #: picks a change up with its next post).
        self.charts = ChartSource(session)
        self.steps_per_s: float | None = None

    # --- what the screen gets ---------------------------------------------------------------

    @property
    def views(self) -> tuple[str, ...]:
        return self.charts.views

    def describe(self) -> tuple[tuple[str, ...], SessionState]:
        """The chart views that apply to this scenario, and the state."""
        return self.charts.describe(), self.session.state()

    def frame(self) -> ChartFrame:
        return self.charts.frame()

    def update(self, *, final: bool = True, chart: bool = True, error: str | None = None,
               notice: str | None = None, steps_per_s: float | None = None, state=None) -> None:
        """Post what the session is now (``state``: the one a run's Frame event built): a run's
        progress (not ``final``), else the command's error (CommandFailed) and then its Frame."""
        state = state if state is not None else self.session.state()
        frame = self.frame() if chart else None
        if not final:
            self.post(RunProgress(state, frame, steps_per_s))
            return
        broken = self.trace.take_error()  # a full disk: said once, never dropped
        if broken:
            notice = "; ".join(n for n in (notice, broken) if n)
        if error:
            self.post(CommandFailed(error))
        self.post(Frame(state, frame, notice=notice, steps_per_s=steps_per_s))

    # --- the jobs -----------------------------------------------------------------------

    def step(self) -> None:
        self.steps(1)

    def steps(self, n: int) -> None:
        """``n`` steps in a row (the step key pressed n times); a StepError or a NaN/Inf ends them early."""
        self.run(limit=n)

    def phase(self) -> None:
        try:
            record = step_phase(self.session, self.trace)
        except StepError as exc:
            self.update(error=str(exc))
            return
        self.update(notice=nonfinite_notice(record) or self.session.take_replay_note())

    def rewind(self, n: int = 1) -> None:
        try:
            undone = self.session.rewind(n)
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
        views, state = self.describe()
        self.trace.start(state, reset=True)  # step numbers restart under a reset and start line
        self.post(Opened(state, views, reset=True))
        self.update()

    def chart(self) -> None:
        self.post(ChartReady(self.frame()))

    def hints(self) -> None:
        """The last step made whole (its hints measured in full), then the state."""
        self.session.detail_last()
        self.update(chart=False)

    def detail(self, name: str) -> None:
        self.post(DetailData(name, *display.detail(self.session, name)))

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
            if type(event) is RunFrame:
                self.update(final=False, chart=event.chart, steps_per_s=event.steps_per_s, state=event.state)
                self.steps_per_s = event.steps_per_s
        stopped = run.stopped
        self.update(error=stopped.error, notice=display.stop_notice(stopped),
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
            n = export_trace(self.trace.path, out, kept=[(self.session.file, "the open scenario"), *self.trace.kept()])
        except ExportError as exc:
            self.post(ExportDone(str(exc), ok=False))
            return
        text = f"wrote {n} step{'' if n == 1 else 's'} to {out}"
        left_out = self.trace.tensors_left_out()
        self.post(ExportDone(f"{text}; {left_out}" if left_out else text, ok=True))


class InProcessPort:
    """The app's trainer port (gdtui.port) with the engine in the app's process.

    ``load`` opens the session (in the worker) and says what of the set-up it could not apply;
    ``trace`` is the app's trace log, which this port writes and ends. The queued commands run
    one at a time, in order, in one thread worker of the app (group "session") that drains the
    queue; Pause, Interrupt, SetControls and Quit act at once (see gdtui.port).
    """

    def __init__(self, load: Callable[[], tuple[Session, str | None]], trace: TraceLog):
        self._load = load
        self.trace = trace
        self.jobs: SessionJobs | None = None
        self.load_error: str | None = None
        self._queue: deque = deque()
        self._lock = threading.Lock()
        self._draining = False
        self._app = None
        self._chart = ("loss", CHART_WIDTH)  # the last Chart command's view and width
        # What each queued command does. Looked up when it runs, so a test can patch a job.
        self._queued: dict[type, Callable[[object], None]] = {
            p.Step: lambda c: self.jobs.steps(c.n),
            p.Run: lambda c: self.jobs.run(c.limit),
            p.Phase: lambda c: self.jobs.phase(),
            p.Rewind: lambda c: self.jobs.rewind(c.n),
            p.Reset: self._reset,
            p.Chart: lambda c: self.jobs.chart(),
            p.Detail: lambda c: self.jobs.detail(c.name),
            p.Hints: lambda c: self.jobs.hints(),
            p.GradientCheck: lambda c: self.jobs.gradcheck(),
            p.Compare: lambda c: self.jobs.compare(),
            p.OptimizerState: lambda c: self.jobs.optimizer_state(),
            p.Export: lambda c: self.jobs.export(c.path),
        }
        self._at_once: dict[type, Callable[[object], None]] = {
            p.Pause: self._pause,
            p.Interrupt: self._interrupt,
            p.SetControls: self._set_controls,
            p.Quit: lambda c: self.close(),
        }

    @property
    def session(self) -> Session | None:
        """The session this port steps, for tests that compare it with a plain loop; the app never reads it."""
        return self.jobs.session if self.jobs is not None else None

    @property
    def trace_path(self) -> str | None:
        return str(self.trace.path) if self.trace.path is not None else None

    def bind(self, app) -> None:
        """The app this port posts to and runs its worker in."""
        self._app = app

    def _post(self, message: Message) -> None:
        self._app.post_message(message)

    # --- commands -------------------------------------------------------------------------------

    def start(self) -> None:
        self.send(p.Reset())

    def send(self, command: object) -> None:
        at_once = self._at_once.get(type(command))
        if at_once is not None:
            at_once(command)
            return
        if type(command) not in self._queued:
            raise TypeError(f"{type(command).__name__} is not a command of the trainer port")
        if isinstance(command, p.Chart):
            # the view and width apply at once: a run in progress draws its next frame with them
            self._chart = (command.view, max(2, int(command.width)))
            if self.jobs is not None:
                self.jobs.charts.show(*self._chart)
        elif isinstance(command, (p.Step, p.Run)) and self.jobs is not None:
            self.jobs.stop.clear()  # a pause pressed from now on stops this one
        with self._lock:
            self._queue.append(command)
            if self._draining:
                return
            self._draining = True
        self._app.run_worker(self._drain, thread=True, group="session", exit_on_error=False)

    def _drain(self) -> None:
        while True:
            with self._lock:
                if not self._queue:
                    self._draining = False
                    return
                command = self._queue.popleft()
            try:
                if self.jobs is None and not isinstance(command, p.Reset):
                    self._post(CommandFailed(f"the scenario did not load: {self.load_error}; r loads it again"))
                else:
                    self._queued[type(command)](command)
            except BaseException as exc:  # noqa: BLE001 - whatever ended the job, the panel shows it and the keys come back
                # (an exception the job let through would otherwise end the worker with no final
                # message, and leave the app busy, at "step running…", for good)
                self._post(CommandFailed(failure_line(exc)))
                if self.jobs is not None:
                    self._post(Frame(self.jobs.session.state()))
            finally:
                if self.jobs is not None:
                    self.jobs.stop.clear()
                self._post(CommandDone(command))

    def _reset(self, command: object) -> None:
        if self.jobs is not None:
            self.jobs.reset()
            return
        try:
            session, warning = self._load()
        except ScenarioError as exc:
            self.load_error = str(exc)
        except BaseException as exc:  # noqa: BLE001 - an engine failure shows in the panel; the app lives on
            self.load_error = failure_line(exc)
        else:
            self.load_error = None
            jobs = SessionJobs(session, self.trace, self._post)
            jobs.charts.show(*self._chart)
            views, state = jobs.describe()
            self.trace.start(state)
            self.jobs = jobs
            self._post(Opened(state, views, warning))
            return
        self._post(LoadFailed(self.load_error))

    def _pause(self, command: object) -> None:
        if self.jobs is not None:
            self.jobs.stop.set()

    def _interrupt(self, command: object) -> None:
        """Stops a gradient check in progress (a step in this process cannot be interrupted)."""
        if self.jobs is not None:
            self.jobs.cancel.set()

    def _set_controls(self, c) -> None:
        """Applied at once, from the app's thread, as the keys always have been: one new Controls
        value, which the session reads once, as its next step starts."""
        if self.jobs is None:
            return
        s = self.jobs.session
        try:
            apply_controls(s, c)
        except (ValueError, ConditionError, ScenarioError) as exc:
            self._post(ControlsRefused(str(exc)))
        now = s.controls  # one value: what the next step will read
        self._post(ControlsChanged(now.mode, now.grad_source, s.lr, s.notes, now.skip_zero_grad, now.condition_texts,
                                   now.until))

    def close(self) -> None:
        """Stop a run and end the trace (with the load error if the scenario never opened)."""
        if self.jobs is not None:
            self.jobs.stop.set()
        self.trace.end(self.session, self.load_error)


def in_process_port(
    path,
    *,
    trace: TraceWriter | None = None,
    seed: int = 0,
    device: str = "cpu",
    history_mb: float = 256,
    max_values: int = 4096,
    mode: str | None = None,
    lr: float | None = None,
    grad_source: str | None = None,
    setup: Callable[[Session], object] | None = None,
    trace_max_elements: int | None = None,
    **session_options: object,
) -> InProcessPort:
    """The port that gdtui.app.make_app gives the app (see its arguments)."""

    def load() -> tuple[Session, str | None]:
        session = Session(path, seed=seed, device=device, history_mb=history_mb, max_values=max_values,
                          mode=mode, lr=lr, grad_source=grad_source, **session_options)
        try:
            if setup is not None:
                setup(session)
        except ConditionError as exc:
            return session, f"{exc}; k sets breakpoints"
        return session, None

    traced = max_values if trace_max_elements is None else trace_max_elements
    return InProcessPort(load, TraceLog(trace, seed, traced))


def make_app(path, **options):
    """The app on an in-process port (:func:`in_process_port`, same arguments): the engine in a
    thread worker of the app's process, for tests that read ``app.port.session`` and compare it
    with a plain loop. The command line's app is gdtui.app.make_app, on a trainer process."""
    from gdtui.app import GdtuiApp

    return GdtuiApp(in_process_port(path, **options), name=str(path))
