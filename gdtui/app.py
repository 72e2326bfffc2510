"""The step-debugger: the App, its actions and the worker thread that steps the session.

The session is only ever stepped in a thread worker; the screen gets frozen
records through messages (gdtui.messages) and does no numeric work. One job
runs at a time, guarded by the ``busy`` reactive and ``check_action``.
"""

from __future__ import annotations

import gc
import threading
import time
from dataclasses import replace
from pathlib import Path

import torch
from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.reactive import reactive
from textual.widgets import DataTable, Footer

from gdtui.engine import charts
from gdtui.engine.loop import StepError
from gdtui.engine.records import SessionState
from gdtui.engine.scenario import ScenarioError
from gdtui.engine.session import Session
from gdtui.engine.trace import TraceWriter
from gdtui.keys import BINDINGS
from gdtui.messages import ChartReady, DetailData, SessionUpdate
from gdtui.widgets.charts import LossChart
from gdtui.widgets.detail_screen import DetailScreen
from gdtui.widgets.error_panel import ErrorPanel
from gdtui.widgets.help_screen import HelpScreen
from gdtui.widgets.loop_panel import LoopPanel
from gdtui.widgets.lr_prompt import LrPrompt
from gdtui.widgets.param_table import ParamTable
from gdtui.widgets.status_line import StatusLine

#: In run mode the worker posts at most one state per this many seconds (about 20 frames a second).
RUN_POST_INTERVAL = 0.05
#: ... and redraws the chart (plotext, the slowest widget) at most this often, leaving the GIL to the steps.
RUN_CHART_INTERVAL = 0.2
WIDE = 160
DETAIL_LIST_MAX = 100
KEYS_DIM_DELAY = 0.15  # seconds a job must run before the footer dims the keys it blocks  # the detail view lists up to this many values, else shows histograms  # columns from which the table shows full summaries


class GdtuiApp(App[None]):
    """Step a scenario's training loop one key at a time."""

    CSS_PATH = "gdtui.tcss"
    TITLE = "gdtui"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS = [*BINDINGS, Binding("ctrl+c", "quit", "Quit", show=False, priority=True)]

    busy: reactive[bool] = reactive(False)
    running: reactive[bool] = reactive(False)

    def __init__(self, session: Session, *, trace: TraceWriter | None = None, seed: int = 0) -> None:
        super().__init__()
        self.session = session
        self.trace = trace
        self.seed = seed
        self._trace_lock = threading.Lock()
        self._trace_done = False
        self._stop = threading.Event()
        self.chart_view = "loss"
        self.chart_width = 60
        self._landscape: charts.LossLandscape | None = None
        self.views, self.state = self._describe()
        self.error: str | None = None
        self.notice: str | None = None
        self.steps_per_s: float | None = None
        self._dim_timer = None
        self._enabled: tuple[bool | None, ...] = ()

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
        self.error_panel.clear()
        self._apply_width()
        self._show_state(self.state)
        self.table.focus()
        self.call_after_refresh(self._request_chart)
        if self.trace is not None:
            self._trace_start(self.state)
        # torch, textual and the scenario leave a few hundred thousand long-lived objects;
        # moving them out of the collector's sight keeps full collections (100+ ms here)
        # out of the key-to-screen path.
        self.call_after_refresh(gc.freeze)

    def on_resize(self) -> None:
        self._apply_width()

    def _apply_width(self) -> None:
        table = self.table
        wide = self.size.width >= WIDE
        if wide != table.wide:
            table.wide = wide
            self.screen.set_class(wide, "-wide")
            self._show_state(self.state)
        self.chart_width = max(self.chart.size.width, 20)

    # --- what may run now ----------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        s = self.state
        if action in ("step", "run"):
            return True if self.running else (None if self.busy else True)
        if action in ("phase", "reset", "mode", "detail"):
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
            self._dim_timer = self.set_timer(KEYS_DIM_DELAY, self._refresh_keys)
        else:
            self._refresh_keys()

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
        self._job(job, *args)

    def action_step(self) -> None:
        if self.running:
            self._stop.set()
        elif not self.busy:
            self._begin("step")

    def action_phase(self) -> None:
        self._begin("phase")

    def action_rewind(self) -> None:
        self._begin("rewind")

    def action_reset(self) -> None:
        self._begin("reset")

    def action_run(self) -> None:
        if self.running:
            self._stop.set()
        elif not self.busy:
            self._stop.clear()
            self.running = True
            self._begin("run")

    def action_mode(self) -> None:
        self.session.toggle_mode()
        self._controls_changed()

    def action_grad_source(self) -> None:
        try:
            self.session.toggle_grad_source()
        except ScenarioError as exc:
            self.notify(str(exc), severity="warning")
        self._controls_changed()

    def action_lr_up(self) -> None:
        self.session.scale_lr(2.0)
        self._controls_changed()

    def action_lr_down(self) -> None:
        self.session.scale_lr(0.5)
        self._controls_changed()

    def action_lr_prompt(self) -> None:
        def done(lr: float | None) -> None:
            if lr is not None:
                self.session.set_lr(lr)
                self._controls_changed()

        self.push_screen(LrPrompt(self.session.lr), done)

    def action_next_view(self) -> None:
        i = self.views.index(self.chart_view) if self.chart_view in self.views else -1
        self.chart_view = self.views[(i + 1) % len(self.views)]
        self._request_chart()

    def action_log_axis(self) -> None:
        self.chart.toggle_log()

    def action_detail(self) -> None:
        name = self.table.selected_name()
        if name is not None and not self.busy:
            self._begin("detail", name)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_detail()

    def action_help(self) -> None:
        sc = self.session.scenario
        self.push_screen(HelpScreen(sc.title, sc.description))

    async def action_quit(self) -> None:
        self._stop.set()
        self._trace_end()
        self.exit()

    def _request_chart(self) -> None:
        if not self.busy:
            self._begin("chart")
        # while a run is going, the worker picks the new view up with its next post

    def _controls_changed(self) -> None:
        """Mode, lr or gradient source changed: they apply from the next step; show them now."""
        s = self.session
        self.state = replace(self.state, mode=s.mode, lr=s.lr, grad_source=s.grad_source, notes=s.notes)
        self._show_state(self.state)

    # --- the worker ----------------------------------------------------------------------

    @work(thread=True, group="session", exit_on_error=False)
    def _job(self, job: str, *args: object) -> None:
        try:
            getattr(self, f"_job_{job}")(*args)
        except Exception as exc:  # noqa: BLE001 - an engine failure shows in the panel; the app lives on
            self._post(error=f"gdtui: {type(exc).__name__}: {exc}")

    def _post(self, *, final: bool = True, rebuild: bool = False, chart: bool = True, **fields) -> None:
        session = self.session
        state = session.state()
        views = None
        if rebuild:
            views, state = self._describe()
        frame = self._frame() if chart else None
        self.post_message(SessionUpdate(state, frame, final=final, rebuild=rebuild, views=views, **fields))

    def _describe(self) -> tuple[tuple[str, ...], SessionState]:
        session = self.session
        sc, tensors = session.scenario, session.loop.tensors
        views = ["loss"]
        if charts.fit_kind(sc) is not None:
            views.append("fit")
        if session.scalar_path is not None and charts.landscape_applies(sc, tensors):
            views.append("landscape")
        self._landscape = None
        return tuple(views), session.state()

    def _frame(self) -> charts.ChartFrame:
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

    def _job_step(self) -> None:
        try:
            record = self.session.step()
        except StepError as exc:
            self._post(error=str(exc))
            return
        self._trace_step(record)
        self._post(notice=_nonfinite_notice(record))

    def _job_phase(self) -> None:
        try:
            record = self.session.step_phase()
        except StepError as exc:
            self._post(error=str(exc))
            return
        if record is not None:
            self._trace_step(record)
        self._post(notice=_nonfinite_notice(record) if record else None)

    def _job_rewind(self) -> None:
        undone = self.session.rewind(1)
        self._post(notice=None if undone else "nothing to rewind")

    def _job_reset(self) -> None:
        try:
            self.session.reset()
        except ScenarioError as exc:
            self._post(error=f"{exc} (the previous session is kept)")
            return
        self._trace_start(self.session.state())
        self._post(rebuild=True)

    def _job_chart(self) -> None:
        self.post_message(ChartReady(self._frame()))

    def _job_detail(self, name: str) -> None:
        state = self.session.state()
        value, grad = state.params[name], state.grads.get(name)
        if state.next_phase == "forward" and state.last is not None:
            grad = state.last.grads.get(name)  # the gradient the last update used
        value_hist = grad_hist = None
        if value.values is None or value.numel > DETAIL_LIST_MAX:
            i = self.session.loop.names.index(name)
            tensor = self.session.loop.tensors[i]
            value_hist = charts.histogram(tensor)
            if state.next_phase != "forward" and tensor.grad is not None:
                grad_hist = charts.histogram(tensor.grad)
            elif grad is not None and grad.values is not None:
                # the live gradient was zeroed; the record kept the values the update used
                grad_hist = charts.histogram(torch.tensor(grad.values, dtype=torch.float64))
        self.post_message(DetailData(name, value, grad, value_hist, grad_hist))

    def _job_run(self) -> None:
        session, stop = self.session, self._stop
        last_post = last_chart = time.perf_counter()
        count, since = 0, last_post
        error = notice = None
        while not stop.is_set():
            try:
                record = session.step()
            except StepError as exc:
                error = str(exc)
                break
            self._trace_step(record)
            count += 1
            notice = _nonfinite_notice(record) or _break_notice(session, record)
            if notice:
                break
            now = time.perf_counter()
            if now - last_post >= RUN_POST_INTERVAL:
                self.steps_per_s = count / (now - since)
                count, since = 0, now
                last_post = now
                chart = now - last_chart >= RUN_CHART_INTERVAL
                if chart:
                    last_chart = now
                self._post(final=False, chart=chart, steps_per_s=self.steps_per_s)
        self._post(error=error, notice=notice, steps_per_s=self.steps_per_s)

    # --- messages from the worker --------------------------------------------------------

    def on_session_update(self, message: SessionUpdate) -> None:
        if message.final:
            self.busy = False
            self.running = False
            self._stop.clear()
        if message.views is not None:
            self.views = message.views
            if self.chart_view not in self.views:
                self.chart_view = "loss"
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
        self.busy = False
        self.call_after_refresh(self._show_chart, message.frame)

    def on_detail_data(self, message: DetailData) -> None:
        self.busy = False
        self.push_screen(DetailScreen(message))

    def _show_chart(self, frame: charts.ChartFrame) -> None:
        self.chart.show(frame)
        self.chart_width = max(self.chart.size.width, 20)

    def _show_state(self, state: SessionState, steps_per_s: float | None = None) -> None:
        sc = self.session.scenario
        self.status_line.show(state, loader=sc.batches is not None, running=self.running,
                                        steps_per_s=steps_per_s)
        self.table.show(state)
        self.loop_panel.show(state, objective=sc.objective is not None, loader=sc.batches is not None)

    # --- the trace -----------------------------------------------------------------------

    def _trace_start(self, state: SessionState) -> None:
        if self.trace is None:
            return
        with self._trace_lock:
            if not self._trace_done:
                self.trace.start(scenario=state.path, seed=self.seed, device=state.device, mode=state.mode,
                                 params=dict(state.params))

    def _trace_step(self, record) -> None:
        if self.trace is None:
            return
        with self._trace_lock:
            if not self._trace_done:
                self.trace.step(record)

    def _trace_end(self) -> None:
        if self.trace is None:
            return
        with self._trace_lock:
            if self._trace_done:
                return
            self._trace_done = True
            steps = self.session.step_count
            target = self.session.scenario.steps
            self.trace.end(steps, "steps" if target and steps >= target else "interrupted")

    def on_unmount(self) -> None:
        self._stop.set()
        self._trace_end()


def _nonfinite_notice(record) -> str | None:
    if record is None or record.nonfinite is None:
        return None
    return f"{record.nonfinite} went non-finite (NaN or Inf) at step {record.step}; b rewinds, - lowers the lr"


def _break_notice(session: Session, record) -> str | None:
    """A stop condition given on the command line (--break, --until, --stop-on-rise) that holds now."""
    triggered = getattr(session, "triggered", None)
    hits = triggered(record) if triggered is not None else []
    if not hits:
        return None
    names = ", ".join(getattr(h, "text", None) or str(h) for h in hits)
    return f"{names} holds after step {record.step}"


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
    **session_options: object,
) -> GdtuiApp:
    """Load the scenario (raises ScenarioError when it does not load) and build the app.

    Options beyond these go to Session as they are, so the CLI can pass new engine options.
    """
    session = Session(path, seed=seed, device=device, history_mb=history_mb, max_values=max_values,
                      mode=mode, lr=lr, grad_source=grad_source, **session_options)
    return GdtuiApp(session, trace=trace, seed=seed)
