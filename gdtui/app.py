"""The step-debugger: the App, its layout, actions and the messages it shows.

The scenario is opened, and the session only ever stepped, in a thread worker
(the jobs are in gdtui.jobs), so the first frame comes before the scenario's
code runs and a scenario that fails to load leaves the app open to say why and
to load it again. The screen gets frozen records through messages
(gdtui.messages) and does no numeric work, diagnostics included. One job runs at a time,
guarded by the ``busy`` reactive and ``check_action``; a step key pressed
while a job runs is counted (``pending``) and those steps run next. The
control and view keys (mode, lr, chart view, detail, help) are in
gdtui.control_keys, the diagnostics keys (k z h G M o e) in gdtui.diagnostics_keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from textual import events, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.reactive import reactive
from textual.widgets import Footer

from gdtui.control_keys import ControlKeys
from gdtui.diagnostics_keys import DiagnosticsKeys
from gdtui.engine.charts import ChartFrame
from gdtui.engine.conditions import ConditionError
from gdtui.engine.records import SessionState
from gdtui.engine.session import Session
from gdtui.engine.trace import TraceWriter
from gdtui.jobs import SessionJobs, TraceLog, failure_line, open_session
from gdtui.keys import ACTIVITY, BINDINGS, NEEDS_IDLE, SESSION_ACTIONS
from gdtui.messages import ChartReady, DetailData, OpenFailed, SessionOpened, SessionUpdate
from gdtui.widgets.charts import LossChart
from gdtui.widgets.detail_screen import DetailScreen
from gdtui.widgets.error_panel import ErrorPanel
from gdtui.widgets.export_prompt import DEFAULT_PATH
from gdtui.widgets.loop_panel import LoopPanel
from gdtui.widgets.param_table import ParamTable
from gdtui.widgets.status_line import StatusLine

WIDE = 160  # columns from which the table shows full summaries
KEYS_DIM_DELAY = 0.15  # seconds a job must run before the footer dims the keys it blocks


class GdtuiApp(ControlKeys, DiagnosticsKeys, App[None]):
    """Step a scenario's training loop one key at a time."""

    CSS_PATH = "gdtui.tcss"
    TITLE = "gdtui"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS = [*BINDINGS, Binding("ctrl+c", "quit", "Quit", show=False, priority=True)]

    busy: reactive[bool] = reactive(False, repaint=False)  # a change repaints nothing by itself
    running: reactive[bool] = reactive(False, repaint=False)

    def __init__(self, load: Callable[[], tuple[Session, str | None]], *, name: str,
                 trace: TraceWriter | None = None, seed: int = 0, max_values: int = 4096) -> None:
        """``load`` opens the session (in the worker) and says what of the set-up it could not apply."""
        super().__init__()
        self._load = load
        self.scenario_path = name
        self.session: Session | None = None  # until the worker has opened the scenario
        self.jobs: SessionJobs | None = None
        self.views: tuple[str, ...] = ("loss",)
        self.state: SessionState | None = None
        self.opened = asyncio.Event()  # set once the first open has succeeded or failed
        self.trace = TraceLog(trace, seed, max_values)
        self.error: str | None = None
        self.notice: str | None = None
        self.pending = 0  # step presses waiting for the job in progress
        self.activity: str | None = None  # the slow job in progress, for the status line
        self.export_path = DEFAULT_PATH
        #: Where gdtui started: an export path is relative to it, even after the scenario's os.chdir.
        self.start_dir = os.getcwd()
        self._dim_timer = None
        self._enabled: tuple[bool | None, ...] = ()
        #: Quit was asked for: the keys queued behind it do nothing (see check_action).
        self.leaving = False

    # --- layout -----------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        # Kept as attributes: updates keep arriving while a modal screen (help, lr) is on
        # top, and App.query_one would search that screen instead.
        self.status_line = StatusLine(id="status")
        self.table = ParamTable(id="params")
        self.loop_panel = LoopPanel(id="loop")
        self.chart = LossChart(id="chart")
        self.error_panel = ErrorPanel(id="error")
        yield self.status_line
        yield self.table
        with Horizontal(id="lower"):
            yield self.loop_panel
            yield self.chart
        yield self.error_panel
        yield Footer(compact=True)

    def on_mount(self) -> None:
        # Thread workers run on the loop's default executor, which asyncio waits for on exit:
        # a step stuck in the scenario's code would hold `q` hostage. This one does not wait.
        asyncio.get_running_loop().set_default_executor(_ExecutorThatDoesNotWait(thread_name_prefix="gdtui-step"))
        self.error_panel.clear()
        self._apply_width()
        self.table.focus()
        self._open()
        if not self.is_headless:
            # a closed terminal (SIGHUP) or a kill (SIGTERM) still ends the trace and removes the temporary one
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError, AttributeError):
                for sig in (signal.SIGHUP, signal.SIGTERM):
                    asyncio.get_running_loop().add_signal_handler(sig, self._leave)

    def _open(self) -> None:
        """Open the scenario in the worker; the status line says so meanwhile."""
        self.busy = True
        self.activity = f"opening {self.scenario_path}…"
        self._show_status()
        self.call_after_refresh(self._open_job)  # the frame that says so first

    @work(thread=True, group="session", exit_on_error=False)
    def _open_job(self) -> None:
        open_session(self._load, self.trace, self.post_message)

    def on_session_opened(self, message: SessionOpened) -> None:
        self.session, self.jobs, self.views, self.state = message.session, message.jobs, message.views, message.state
        self.activity = self.error = None
        self._apply_width()
        self._show_state(self.state)
        self.trace.start(self.state)
        if message.warning:
            self.error_panel.show_error(message.warning, label="not set", advice="")
        # torch, textual and the scenario leave a few hundred thousand long-lived objects;
        # moving them out of the collector's sight keeps full collections (100+ ms here)
        # out of the key-to-screen path.
        self.call_after_refresh(gc.freeze)
        self.opened.set()
        if self.pending:
            self._idle()  # the steps pressed while it opened run now; their update brings the chart
        else:
            self._job("chart")  # still busy: the keys come alive once the chart is there

    def on_open_failed(self, message: OpenFailed) -> None:
        self.error, self.activity, self.pending = message.error, None, 0
        self._show_status()
        self.error_panel.show_error(message.error, advice="fix the file, then r loads it again; q quits")
        self.opened.set()
        self.busy = False

    def _leave(self) -> None:
        """End the trace and exit: status 2 when the scenario never opened, as headless gives."""
        self.leaving = True
        self._end()
        self.exit(return_code=2 if self.session is None and self.error else 0)

    def _end(self) -> None:
        """Stop a run and end the trace (with the load error if the scenario never opened)."""
        if self.jobs is not None:
            self.jobs.stop.set()
        self.trace.end(self.session, self.error)

    def on_resize(self, event: events.Resize) -> None:
        self._apply_width(event.size.width)  # self.size may still be the old one here

    def _apply_width(self, width: int | None = None) -> None:
        table = self.table
        wide = (width or self.size.width) >= WIDE
        if wide != table.wide:
            table.wide = wide
            self.screen.set_class(wide, "-wide")
            if self.state is not None:
                self._show_state(self.state)
        if self.jobs is not None:
            self.jobs.chart_width = max(self.chart.size.width, 20)

    # --- what may run now ----------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if self.leaving:
            return False  # a screen pushed now would never be composed, and its on_mount would fail
        s = self.state
        if s is None:  # the scenario is opening, or did not open: reset loads it (again), step queues
            if action in ("quit", "help") or (action == "step" and self.busy):
                return True
            return None if self.busy or action != "reset" else True
        if len(self.screen_stack) > 1 and action in SESSION_ACTIONS:
            # a help, detail or lr screen is open: its keys, not the session's (pausing a run excepted)
            return self.running and action in ("step", "run")
        if action == "step":
            return True  # pauses a run; else steps now, or after the job in progress
        if action == "run":
            return True if self.running else (None if self.busy else True)
        if action in NEEDS_IDLE:
            return None if self.busy else True
        if action == "rewind":
            return None if self.busy or s.rewind_depth == 0 else True
        if action == "grad_source":
            return None if self.busy or not s.has_grad_fn else True
        if action == "next_view":
            return True if len(self.views) > 1 else None
        return True

    def watch_busy(self, busy: bool) -> None:
        # A step takes a millisecond; rebuilding the footer twice for it would cost more
        # than the step. The keys are refused at once (check_action); the footer dims
        # them only when a job is still going after KEYS_DIM_DELAY.
        if self._dim_timer is not None:
            self._dim_timer.stop()
            self._dim_timer = None
        if busy:
            self._dim_timer = self.set_timer(KEYS_DIM_DELAY, self._still_busy)
        else:
            self._refresh_keys()

    def _still_busy(self) -> None:
        """A job outlasted KEYS_DIM_DELAY: dim the keys it holds back, and say a step is running."""
        self._refresh_keys()
        if self.busy and not self.running and not self.activity:
            self.activity = "step running… (q quits)"
            self._show_status()

    def watch_running(self) -> None:
        self._refresh_keys()

    def _refresh_keys(self) -> None:
        """Redraw the footer when, and only when, the set of keys that can act changed."""
        enabled = tuple(self.check_action(b.action, ()) for b in BINDINGS)
        if enabled != self._enabled:
            self._enabled = enabled
            self.refresh_bindings()

    # --- actions -----------------------------------------------------------------------

    def _begin(self, job: str, *args: object) -> None:
        self.busy = True
        self.activity = ACTIVITY.get(job)
        if self.activity:
            self._show_status()
        self._job(job, *args)

    def _idle(self) -> None:
        """A job ended: the queued steps run next, else the keys it held back act again."""
        if self.activity:
            self.activity = None
            self._show_status()
        if self.pending:
            n, self.pending = self.pending, 0
            self._job("steps", n)
        else:
            self.busy = False

    def action_step(self) -> None:
        if self.running:
            self.jobs.stop.set()
        elif self.busy:
            self.pending += 1
            self._show_status()
        else:
            self._begin("steps", 1)

    def action_phase(self) -> None:
        self._begin("phase")

    def action_rewind(self) -> None:
        self._begin("rewind")

    def action_reset(self) -> None:
        if self.session is None:
            self.error_panel.clear()
            self._open()
        else:
            self._begin("reset")

    def action_run(self) -> None:
        if self.running:
            self.jobs.stop.set()
        elif not self.busy:
            self.jobs.stop.clear()
            self.running = True
            self._begin("run")

    async def action_quit(self) -> None:
        self._leave()

    def _request_chart(self) -> None:
        if not self.busy:
            self._begin("chart")
        # while a run is going, the worker picks the new view up with its next post

    # --- the worker ----------------------------------------------------------------------

    @work(thread=True, group="session", exit_on_error=False)
    def _job(self, job: str, *args: object) -> None:
        try:
            getattr(self.jobs, job)(*args)
        except BaseException as exc:  # noqa: BLE001 - whatever ended the job, the panel shows it and the keys come back
            # (an exception the job let through would otherwise end the worker with no final
            # message, and leave the app busy, at "step running…", for good)
            self.post_message(SessionUpdate(self.session.state(), error=failure_line(exc)))

    # --- messages from the worker --------------------------------------------------------

    def on_session_update(self, message: SessionUpdate) -> None:
        if message.final:
            self.running = False
            self.jobs.stop.clear()
            if message.error or message.notice:
                self.pending = 0  # an error, a NaN or nothing to rewind: the queued steps are dropped
            self._idle()
        if message.views is not None:
            self.views = message.views
            if self.jobs.chart_view not in self.views:
                self.jobs.chart_view = "loss"
        self.error, self.notice = message.error, message.notice
        self.state = message.state
        self._show_state(message.state, steps_per_s=message.steps_per_s)
        panel = self.error_panel
        if message.error:
            panel.show_error(message.error)
        elif message.notice:
            panel.show_notice(message.notice)
        elif message.final:
            panel.clear()
        if message.chart is not None:
            # the table and status paint in this frame; the slower plotext chart follows
            self.call_after_refresh(self._show_chart, message.chart)
        self._refresh_keys()

    def on_chart_ready(self, message: ChartReady) -> None:
        self._idle()
        self.call_after_refresh(self._show_chart, message.frame)

    def on_detail_data(self, message: DetailData) -> None:
        self._idle()
        self.push_screen(DetailScreen(message))

    def _show_chart(self, frame: ChartFrame) -> None:
        self.chart.show(frame)
        self.jobs.chart_width = max(self.chart.size.width, 20)

    def _show_status(self, steps_per_s: float | None = None) -> None:
        activity = " · ".join(a for a in (self.activity, f"+{self.pending} queued" if self.pending else None) if a)
        if self.session is None:
            self.status_line.show_opening(activity or f"could not open {self.scenario_path}")
            return
        self.status_line.show(self.state, loader=self.session.scenario.batches is not None, running=self.running,
                              steps_per_s=steps_per_s, activity=activity or None)

    def _show_state(self, state: SessionState, steps_per_s: float | None = None) -> None:
        sc = self.session.scenario
        self._show_status(steps_per_s)  # from self.state, which every caller has just set to state
        self.table.show(state)
        self.loop_panel.show(state, objective=sc.objective is not None, loader=sc.batches is not None)

    def on_unmount(self) -> None:
        self._end()


class _ExecutorThatDoesNotWait(ThreadPoolExecutor):
    """Shutting down does not wait for a running step; the CLI then exits without joining it."""

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        super().shutdown(wait=False, cancel_futures=True)


def make_app(
    path: str | Path,
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
) -> GdtuiApp:
    """Build the app; it opens the scenario in its worker once its first frame is up.

    A scenario that does not load leaves the app open with the one-line error,
    and ``r`` loads it again. ``setup`` is applied to each new session (the
    command line's breakpoints); a ConditionError from it is shown, and the
    session opens without that condition. Options beyond these go to Session
    as they are, so the CLI can pass new engine options. ``trace_max_elements``
    (default: ``max_values``) is the trace's own limit, the export log's too.
    """

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
    return GdtuiApp(load, name=str(path), trace=trace, seed=seed, max_values=traced)
