"""What the step-debugger's worker thread does: step the session, build the records, post them.

:class:`SessionJobs` runs in the app's thread worker, one job at a time (the app
guards that with its ``busy`` reactive). Every job ends by posting a final
message; a run also posts progress at most every RUN_POST_INTERVAL seconds.
Nothing here touches a widget: the screen only ever sees frozen records.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable

import torch
from textual.message import Message

from gdtui.engine import charts
from gdtui.engine.loop import StepError
from gdtui.engine.records import SessionState, StepRecord
from gdtui.engine.scenario import ScenarioError
from gdtui.engine.session import Session
from gdtui.engine.trace import TraceWriter
from gdtui.messages import ChartReady, DetailData, SessionUpdate

#: In run mode the worker posts at most one state per this many seconds (about 20 frames a second).
RUN_POST_INTERVAL = 0.05
#: ... and a new chart (plotext, the slowest widget) at most this often, leaving the GIL to the steps.
RUN_CHART_INTERVAL = 0.2
#: The detail view lists up to this many values; a larger tensor gets histograms.
DETAIL_LIST_MAX = 100


class TraceLog:
    """The app's trace: start on mount and after each reset, every step as it finishes, end on quit.

    Written from the worker and the UI thread, so under a lock; nothing is written after the end line.
    """

    def __init__(self, trace: TraceWriter | None, seed: int):
        self.trace, self.seed = trace, seed
        self._lock = threading.Lock()
        self._ended = False

    def start(self, state: SessionState) -> None:
        with self._lock:
            if self.trace is not None and not self._ended:
                self.trace.start(scenario=state.path, seed=self.seed, device=state.device, mode=state.mode,
                                 params=dict(state.params))

    def step(self, record: StepRecord) -> None:
        with self._lock:
            if self.trace is not None and not self._ended:
                self.trace.step(record)

    def end(self, session: Session) -> None:
        """``steps`` when the scenario's own step count was reached, else ``interrupted``."""
        with self._lock:
            if self.trace is None or self._ended:
                return
            self._ended = True
            steps, target = session.step_count, session.scenario.steps
            self.trace.end(steps, "steps" if target and steps >= target else "interrupted")


class SessionJobs:
    """The jobs the keys start; ``post`` sends a message to the app (thread-safe)."""

    def __init__(self, session: Session, trace: TraceLog, post: Callable[[Message], object]):
        self.session = session
        self.trace = trace
        self.post = post
        self.stop = threading.Event()
        self.chart_view = "loss"  # set by the app; a run picks a change up with its next post
        self.chart_width = 60
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
        self.post(SessionUpdate(state, self.frame() if chart else None, final=final, views=views, **fields))

    # --- the jobs -----------------------------------------------------------------------

    def step(self) -> None:
        try:
            record = self.session.step()
        except StepError as exc:
            self.update(error=str(exc))
            return
        self.trace.step(record)
        self.update(notice=nonfinite_notice(record))

    def phase(self) -> None:
        try:
            record = self.session.step_phase()
        except StepError as exc:
            self.update(error=str(exc))
            return
        if record is not None:
            self.trace.step(record)
        self.update(notice=nonfinite_notice(record))

    def rewind(self) -> None:
        undone = self.session.rewind(1)
        self.update(notice=None if undone else "nothing to rewind")

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
        self.trace.start(self.session.state())  # the trace's step numbers restart under a new start line
        self.update(rebuild=True)

    def chart(self) -> None:
        self.post(ChartReady(self.frame()))

    def detail(self, name: str) -> None:
        state = self.session.state()
        value, grad = state.params[name], state.grads.get(name)
        if state.next_phase == "forward" and state.last is not None:
            grad = state.last.grads.get(name)  # the gradient the last update used
        value_hist = grad_hist = None
        if value.values is None or value.numel > DETAIL_LIST_MAX:
            tensor = self.session.loop.tensors[self.session.loop.names.index(name)]
            value_hist = charts.histogram(tensor)
            if state.next_phase != "forward" and tensor.grad is not None:
                grad_hist = charts.histogram(tensor.grad)
            elif grad is not None and grad.values is not None:
                # the live gradient was zeroed; the record kept the values the update used
                grad_hist = charts.histogram(torch.tensor(grad.values, dtype=torch.float64))
        self.post(DetailData(name, value, grad, value_hist, grad_hist))

    def run(self) -> None:
        """Step until paused (``stop``), a StepError, a NaN/Inf or a --break condition."""
        session, stop = self.session, self.stop
        last_post = last_chart = since = time.perf_counter()
        count = 0
        error = notice = None
        while not stop.is_set():
            try:
                record = session.step()
            except StepError as exc:
                error = str(exc)
                break
            self.trace.step(record)
            count += 1
            notice = nonfinite_notice(record) or break_notice(session, record)
            if notice:
                break
            now = time.perf_counter()
            if now - last_post >= RUN_POST_INTERVAL:
                self.steps_per_s = count / (now - since)
                count, since, last_post = 0, now, now
                chart = now - last_chart >= RUN_CHART_INTERVAL
                if chart:
                    last_chart = now
                self.update(final=False, chart=chart, steps_per_s=self.steps_per_s)
        self.update(error=error, notice=notice, steps_per_s=self.steps_per_s)


def nonfinite_notice(record: StepRecord | None) -> str | None:
    if record is None or record.nonfinite is None:
        return None
    return f"{record.nonfinite} went non-finite (NaN or Inf) at step {record.step}; b rewinds, - lowers the lr"


def break_notice(session: Session, record: StepRecord) -> str | None:
    """A stop condition given on the command line (--break, --until, --stop-on-rise) that holds now."""
    triggered = getattr(session, "triggered", None)
    hits = triggered(record) if triggered is not None else []
    if not hits:
        return None
    names = ", ".join(getattr(h, "text", None) or str(h) for h in hits)
    return f"{names} holds after step {record.step}"
