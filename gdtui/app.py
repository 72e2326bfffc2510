"""The step-debugger: the App, its layout, actions and the messages it shows.

The app talks to the engine through one trainer port (gdtui.port): it sends the
port gdtui.protocol's commands and shows the frozen records that the port's
messages (gdtui.messages) carry. It never holds a Session and does no numeric
work, diagnostics included. Its port, gdtui.client_port.ClientPort, runs the
scenario in a trainer process, so the first frame comes before torch loads, a
scenario that fails to load leaves the app open to say why and to load it again,
and a trainer that dies (a segfault, os._exit) leaves it open to say how (r starts
a new one). ctrl+c during a step interrupts it in the trainer; idle, it quits. One command runs at a time, guarded by the ``busy`` reactive and
``check_action``; a step key pressed while one runs is counted (``pending``) and
those steps run next. Each queued command ends with CommandDone, the one place
where ``busy`` clears. The control and view keys (mode, lr, chart view, detail,
help) are in gdtui.control_keys, the diagnostics keys (k z h G M o e) in
gdtui.diagnostics_keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from textual import events
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.reactive import reactive
from textual.widgets import Footer

from gdtui import protocol as p
from gdtui.control_keys import ControlKeys
from gdtui.diagnostics_keys import DiagnosticsKeys
from gdtui.engine.chart_records import ChartFrame
from gdtui.engine.records import SessionState
from gdtui.keys import ACTIVITY, BINDINGS, NEEDS_IDLE, SESSION_ACTIONS
from gdtui.messages import (
    ChartReady,
    CommandDone,
    CommandFailed,
    DetailData,
    Frame,
    LoadFailed,
    Opened,
    RunProgress,
    TrainerEnded,
    TrainerOutput,
)
from gdtui.port import TrainerPort
from gdtui.widgets.charts import LossChart
from gdtui.widgets.detail_screen import DetailScreen
from gdtui.widgets.error_panel import ErrorPanel
from gdtui.widgets.export_prompt import DEFAULT_PATH
from gdtui.widgets.loop_panel import LoopPanel
from gdtui.widgets.param_table import ParamTable
from gdtui.widgets.quit_prompt import QuitPrompt
from gdtui.widgets.report_screen import ReportScreen
from gdtui.widgets.status_line import StatusLine

WIDE = 160  # columns from which the table shows full summaries
KEYS_DIM_DELAY = 0.15  # seconds a job must run before the footer dims the keys it blocks
MIN_CHART_WIDTH = 20  # the width asked of the port before the chart has one
OUTPUT_LINES = 5000  # the trainer's output lines the output view (O) keeps
ENDED_LINES = 5  # of the trainer's output, which the error panel shows when the trainer ends (it must fit)


class GdtuiApp(ControlKeys, DiagnosticsKeys, App[None]):
    """Step a scenario's training loop one key at a time."""

    CSS_PATH = "gdtui.tcss"
    TITLE = "gdtui"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS = [*BINDINGS, Binding("ctrl+c", "interrupt", "Quit", show=False, priority=True)]

    busy: reactive[bool] = reactive(False, repaint=False)  # a change repaints nothing by itself
    running: reactive[bool] = reactive(False, repaint=False)

    def __init__(self, port: TrainerPort, *, name: str) -> None:
        """``port`` runs the scenario named ``name`` (see gdtui.port); the app starts it once its first frame is up."""
        super().__init__()
        self.port = port
        port.bind(self)
        self.scenario_path = name
        self.views: tuple[str, ...] = ("loss",)
        self.state: SessionState | None = None  # until the port has opened the scenario
        self.opened = asyncio.Event()  # set once the first open has succeeded or failed
        self.error: str | None = None
        self.notice: str | None = None
        self.pending = 0  # step presses waiting for the command in progress
        self.activity: str | None = None  # the slow job in progress, for the status line
        self.chart_view = "loss"
        self.chart_width = 0  # what the port was last told (Chart); 0: nothing yet
        self.export_path = DEFAULT_PATH
        #: Where gdtui started: an export path is relative to it, even after the scenario's os.chdir.
        self.start_dir = os.getcwd()
        self._inflight = 0  # queued commands sent to the port whose CommandDone has not come
        self._cancelling = False  # escape was pressed during a gradient check
        self._dim_timer = None
        self._enabled: tuple[bool | None, ...] = ()
        #: Quit was asked for: the keys queued behind it do nothing (see check_action).
        self.leaving = False
        #: The trainer's output: (step, line) pairs, the latest last (the output view, O).
        self.output: deque[tuple[int, str]] = deque(maxlen=OUTPUT_LINES)
        #: How the trainer ended, when it ended by itself (r starts a new one).
        self.ended: str | None = None
        #: Where the trainer waits once ``d`` detached this screen (gdtui.client_port.Detached).
        self.detached = None

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
            # A closed terminal (SIGHUP, as when SSH drops) detaches from a trainer that can outlive
            # the screen: it waits, paused, for gdtui --connect. A kill (SIGTERM), or a hang-up of a
            # screen whose training cannot wait, ends the trace and removes the temporary one.
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError, AttributeError):
                loop = asyncio.get_running_loop()
                loop.add_signal_handler(signal.SIGHUP, self._hang_up)
                loop.add_signal_handler(signal.SIGTERM, self._leave)

    def _open(self) -> None:
        """Open the scenario through the port; the status line says so meanwhile."""
        self.busy = True
        self.activity = f"opening {self.scenario_path}…"
        self._show_status()
        self.call_after_refresh(self._start)  # the frame that says so first

    def _start(self) -> None:
        self._inflight += 1
        self.port.start()

    def _send(self, command: object) -> None:
        """A command the port queues: busy until its CommandDone."""
        self.busy = True
        self.error = None  # the panel keeps the last one until this command's Frame
        self._inflight += 1
        self.port.send(command)

    def on_opened(self, message: Opened) -> None:
        self.views, self.state = message.views, message.state
        if self.chart_view not in self.views:
            self.chart_view = "loss"  # the port draws the loss too
        self.activity = None
        if message.reset:
            return  # the reset's Frame follows, with the chart
        self.error = None
        self._apply_width()
        self._show_state(self.state)
        if message.warning:
            self.error_panel.show_error(message.warning, label="not set", advice="")
        # torch, textual and the scenario leave a few hundred thousand long-lived objects;
        # moving them out of the collector's sight keeps full collections (100+ ms here)
        # out of the key-to-screen path.
        self.call_after_refresh(gc.freeze)
        self.opened.set()
        if not self.pending:
            # still busy: the keys come alive once the chart is there; queued steps bring it themselves
            self._request_chart()

    def on_load_failed(self, message: LoadFailed) -> None:
        self.error, self.activity, self.pending = message.error, None, 0
        self._show_status()
        self.error_panel.show_error(message.error, advice="fix the file, then r loads it again; q quits")
        self.opened.set()
        self._refresh_keys()  # no session: only r and q act, whatever the footer showed while it loaded

    def _hang_up(self) -> None:
        """The terminal went away: detach where the trainer can wait for another screen, else leave."""
        detach = getattr(self.port, "detach", None)
        detached = detach() if detach is not None and not self.leaving else None
        if detached is None:
            self._leave()
            return
        self.detached = detached
        self.leaving = True
        self.exit(return_code=0)

    def _leave(self) -> None:
        """End the trace and exit: status 2 when the scenario never opened, as headless gives."""
        self.leaving = True
        self.port.send(p.Quit())
        self.exit(return_code=2 if self.state is None and self.error else 0)

    def on_resize(self, event: events.Resize) -> None:
        self._apply_width(event.size.width)  # self.size may still be the old one here
        self.call_after_refresh(self._sync_chart_width)  # the chart's new size, once laid out

    def _apply_width(self, width: int | None = None) -> None:
        table = self.table
        wide = (width or self.size.width) >= WIDE
        if wide != table.wide:
            table.wide = wide
            self.screen.set_class(wide, "-wide")
            if self.state is not None:
                self._show_state(self.state)

    def _sync_chart_width(self) -> None:
        """Tell the port the chart's width when it changed: the loss is drawn to it."""
        if self.state is not None and self.chart_width and self._chart_size() != self.chart_width:
            self._request_chart()

    def _chart_size(self) -> int:
        return max(self.chart.size.width, MIN_CHART_WIDTH)

    # --- what may run now ----------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if self.leaving:
            return False  # a screen pushed now would never be composed, and its on_mount would fail
        if action == "detach":  # a trainer to leave waiting: the port is attached to one
            return True if getattr(self.port, "socket_path", None) else None
        s = self.state
        if s is None:  # the scenario is opening, or did not open: reset loads it (again), step queues
            if action in ("quit", "help", "output") or (action == "step" and self.busy):
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
        self._dim_timer = None
        self._refresh_keys()
        if self.busy and not self.running and not self.activity:
            self.activity = "step running… (q quits)"
            self._show_status()

    def watch_running(self) -> None:
        self._refresh_keys()

    def _refresh_keys(self) -> None:
        """Redraw the footer when, and only when, the set of keys that can act changed; not while a
        job is younger than KEYS_DIM_DELAY (a step's frame would rebuild it, and its end again)."""
        if self._dim_timer is not None:
            return
        enabled = tuple(self.check_action(b.action, ()) for b in BINDINGS)
        if enabled != self._enabled:
            self._enabled = enabled
            self.refresh_bindings()

    # --- actions -----------------------------------------------------------------------

    def _begin(self, command: object, action: str | None = None) -> None:
        """Send a queued command; ``action`` names the key's action when the status line says what runs."""
        self.activity = ACTIVITY.get(action) if action else None
        if self.activity:
            self._show_status()
        self._send(command)

    def on_command_done(self, message: CommandDone) -> None:
        """The one place a command's end is handled: when none is left, the queued steps run
        next, else the keys it held back act again."""
        self._inflight = max(self._inflight - 1, 0)
        if isinstance(message.command, p.Run):
            self.running = False
        if self._inflight:
            return
        self._cancelling = False
        if self.activity:
            self.activity = None
            self._show_status()
        if self.pending and self.state is not None:
            n, self.pending = self.pending, 0
            self._send(p.Step(n))
        else:
            self.pending = 0
            self.busy = False
        self._refresh_keys()

    def action_step(self) -> None:
        if self.running:
            self.port.send(p.Pause())
        elif self.busy:
            self.pending += 1
            self._show_status()
        else:
            self._begin(p.Step(1))

    def action_phase(self) -> None:
        self._begin(p.Phase())

    def action_rewind(self) -> None:
        self._begin(p.Rewind(1))

    def action_reset(self) -> None:
        if self.state is None:
            self.ended = None
            self.error_panel.clear()
            self._open()
        else:
            self._begin(p.Reset())

    def action_run(self) -> None:
        if self.running:
            self.port.send(p.Pause())
        elif not self.busy:
            self.running = True
            self._begin(p.Run())

    async def action_quit(self) -> None:
        self._quit()

    def _quit(self) -> None:
        """q (and ctrl+c when idle): end the trainer and leave. A trainer someone started with
        --listen is theirs: the screen asks first (q again ends it, d detaches, esc stays)."""
        if not (getattr(self.port, "listening", False) and getattr(self.port, "socket_path", None)):
            self._leave()
            return

        def answered(answer: str | None) -> None:
            if answer == "quit":
                self._leave()
            elif answer == "detach":
                self.action_detach()

        if isinstance(self.screen, QuitPrompt):  # ctrl+c (a priority key) on the prompt: as q again
            self.screen.dismiss("quit")
        else:
            self.push_screen(QuitPrompt(f"the trainer at {self.port.socket_path}"), answered)

    def action_detach(self) -> None:
        """d: leave the trainer paused at its step, with its history, for the next screen
        (gdtui --connect PATH, which the command line prints once the terminal is restored)."""
        detach = getattr(self.port, "detach", None)  # a port whose trainer can outlive the screen
        detached = detach() if detach is not None else None
        if detached is None:
            return
        self.detached = detached
        self.leaving = True
        self.exit(return_code=0)

    def action_interrupt(self) -> None:
        """ctrl+c: during a step or a run of a trainer process, interrupt it (the user's code gets
        KeyboardInterrupt and the step is rolled back); else quit."""
        if self.busy and self.state is not None and getattr(self.port, "can_interrupt", False):
            self.port.send(p.Interrupt())
            self.activity = "interrupting… (q quits)"
            self._show_status()
        else:
            self._quit()

    def action_output(self) -> None:
        """The trainer's output, each line marked with the step it was printed in."""
        lines = tuple(f"[{step}] {text}" for step, text in self.output) or ("(the scenario printed nothing)",)
        self.push_screen(ReportScreen(f"output of {self.scenario_path} (O)", lines, heading=False))

    def _request_chart(self) -> None:
        """Ask for the chart of the current view at the chart's width; a run in progress draws
        its next frame with them."""
        self.chart_width = self._chart_size()
        self._send(p.Chart(self.chart_view, self.chart_width))

    # --- messages from the port ----------------------------------------------------------

    def on_run_progress(self, message: RunProgress) -> None:
        self.error = self.notice = None
        self.state = message.state
        self._show_state(message.state, steps_per_s=message.steps_per_s)
        if message.chart is not None:
            self.call_after_refresh(self._show_chart, message.chart)

    def on_command_failed(self, message: CommandFailed) -> None:
        self.error = message.error
        self.pending = 0  # the queued steps are dropped
        self.error_panel.show_error(message.error)

    def on_frame(self, message: Frame) -> None:
        self.notice = message.notice
        if message.notice:
            self.pending = 0  # a NaN, a breakpoint or nothing to rewind: the queued steps are dropped
        self.state = message.state
        self._show_state(message.state, steps_per_s=message.steps_per_s)
        panel = self.error_panel
        if self.error:
            pass  # this command's error (CommandFailed) stays up
        elif message.notice:
            panel.show_notice(message.notice)
        else:
            panel.clear()
        if message.chart is not None:
            # the table and status paint in this frame; the slower plotext chart follows
            self.call_after_refresh(self._show_chart, message.chart)
        self._refresh_keys()

    def on_chart_ready(self, message: ChartReady) -> None:
        self.call_after_refresh(self._show_chart, message.frame)

    def on_trainer_output(self, message: TrainerOutput) -> None:
        self.output.extend(message.lines)
        if self.state is not None and message.lines:
            self._show_status()

    def on_trainer_ended(self, message: TrainerEnded) -> None:
        """The trainer died (a segfault, os._exit, a kill): the screen stays, says how, with its
        last lines; r starts a new trainer."""
        last = [line for line in message.last_lines if line.strip()][-ENDED_LINES:]
        self.ended = message.how
        self.error = message.how
        self.state, self.running, self.pending, self.activity = None, False, 0, None
        # What to do goes first: the newest output lines, at the end, are the ones a short panel must not cut.
        text = f"{message.how}; r starts a new trainer, q quits" + "".join(f"\n  {line}" for line in last)
        self.error_panel.show_error(text, label="trainer ended", advice="", tall=True)
        self._show_status()
        self._refresh_keys()

    def on_detail_data(self, message: DetailData) -> None:
        self.push_screen(DetailScreen(message))

    def _show_chart(self, frame: ChartFrame) -> None:
        self.chart.show(frame)
        self._sync_chart_width()

    def _show_status(self, steps_per_s: float | None = None) -> None:
        activity = " · ".join(a for a in (self.activity, f"+{self.pending} queued" if self.pending else None) if a)
        if self.state is None:
            self.status_line.show_opening(activity or self.ended or f"could not open {self.scenario_path}")
            return
        tail = self.output[-1][1] if self.output else None
        self.status_line.show(self.state, loader=self.state.loader, running=self.running,
                              steps_per_s=steps_per_s, activity=activity or None, output=tail)

    def _show_state(self, state: SessionState, steps_per_s: float | None = None) -> None:
        self._show_status(steps_per_s)  # from self.state, which every caller has just set to state
        self.table.show(state)
        self.loop_panel.show(state, objective=state.objective, loader=state.loader)

    def on_unmount(self) -> None:
        if self.detached is None:  # a detached trainer stays
            self.port.send(p.Quit())


class _ExecutorThatDoesNotWait(ThreadPoolExecutor):
    """Shutting down does not wait for a running step; the CLI then exits without joining it."""

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        super().shutdown(wait=False, cancel_futures=True)


def make_app(
    path: str | Path | None = None,
    *,
    flags: Sequence[str] = (),
    args: Sequence[str] = (),
    connect: str | None = None,
) -> GdtuiApp:
    """Build the app on a trainer process (gdtui.client_port): it starts ``python -m gdtui.trainer
    PATH FLAGS -- ARGS`` once its first frame is up, or connects to the trainer listening at
    ``connect``. This process never imports torch.

    A scenario that does not load leaves the app open with the one-line error, and ``r``
    loads it again; a trainer that dies leaves it open to say how, and ``r`` starts a new one.
    ``flags`` are the trainer's session flags (gdtui.client_port.trainer_flags builds them).
    The app on an in-process port, for tests that read its Session, is gdtui.jobs.make_app.
    """
    from gdtui.client_port import ClientPort

    port = ClientPort(None if path is None else str(path), flags=flags, args=args, connect=connect)
    return GdtuiApp(port, name=str(path) if path is not None else str(connect))
