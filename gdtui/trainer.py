"""``python -m gdtui.trainer SCENARIO [--socket PATH] [session flags] [-- ARGS]``: the trainer process.

The trainer loads a scenario's Session in its main thread (so the user's code has ``__main__``,
signals and KeyboardInterrupt where it expects them) and serves one Unix socket speaking
gdtui.protocol to one client at a time. Its fds 1 and 2 are a pseudo-terminal: everything the
user's code, a C extension or a subprocess writes there reaches the client as Output lines,
each marked with the step in progress when it was written.

This module runs the commands: the main thread loads the scenario and runs them, one at a time,
from a queue. gdtui.trainer_socket serves them (the socket, the attached client, the output):
each connection's thread hands its commands to :meth:`Trainer.on_command`, which queues them,
except Pause, SetControls and Interrupt, which act at once (stop a run; set a control; SIGINT to
this process, whose handler raises KeyboardInterrupt only while a command runs).

A client that goes away, and SIGHUP (the terminal or SSH session that started a --listen trainer
went away), pause a run; the trainer waits for the next client. With no client for
--detach-timeout minutes (default 30; --listen: forever) it ends. SIGTERM, and a SIGINT that no
client's interrupt asked for, end it. Each ending removes its socket.

Steps and runs are gdtui.engine.runner.Run's, the one run loop; the chart, a tensor's detail,
the notices and the trace log are gdtui.engine.display's, as for the in-process port. The commands
that answer with a report or a value and change no step (controls, detail, hints, the
diagnostics, export) are gdtui.trainer_reports' functions.
"""

from __future__ import annotations

import argparse
import os
import queue
import signal
import socket
import stat
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from gdtui import protocol as p
from gdtui import trainer_reports as reports
from gdtui.trainer_socket import ClientLink, SocketInUse, bind_socket

#: Frames a run sends, at most, a second.
RUN_FRAMES_PER_S = 20
#: Steps of the trace log written at a time while the trainer has nothing to do.
LOG_BATCH = 64
#: A trainer with no client for this many minutes ends (--detach-timeout; --listen: never).
DETACH_TIMEOUT_MIN = 30.0


class Trainer:
    """One scenario, one socket, one client at a time."""

    def __init__(self, args: argparse.Namespace, server: socket.socket, path: str):
        self.args = args
        self.server = server
        self.path = path
        self.commands: queue.Queue = queue.Queue()
        self.session = None
        self.load_error: str | None = None
        self.charts = None  # the ChartSource of the session, once it loaded
        self._chart_asked: tuple[str, int] | None = None  # the last Chart command's view and width
        #: The session's trace log (gdtui.engine.display.TraceLog): --trace's file, else a
        #: temporary one that export reads, removed when the trainer ends.
        self.trace = None
        self.busy = False  # a command runs in the main thread: SIGINT interrupts it
        self.stop = threading.Event()  # Pause, or the client went away: a run ends after its step
        #: Seconds with no client after which the trainer ends; 0: never.
        self.detach_timeout_s = 60.0 * (args.detach_timeout if args.detach_timeout is not None
                                        else (0.0 if args.listen else DETACH_TIMEOUT_MIN))
        self._interrupt_asked = False  # the next SIGINT is a client's interrupt, not a request to end
        self._end_signal: int | None = None  # the signal that ends the trainer, once one came
        self.check = reports.CheckCancel()  # a gradient check runs: an interrupt cancels it between evaluations
        #: The terminal a --listen trainer was started in (a copy of its fd 1), for its few lines.
        self.console: int | None = None
        self._greeted = 0  # clients already sent the state (an Opened goes to the attached one)
        self.link = ClientLink(server, path, scenario=args.scenario, listening=bool(args.listen),
                               detach_timeout_s=self.detach_timeout_s, step=self._step, on_command=self.on_command,
                               on_attach=lambda number: self.commands.put(_Attached(number)), stop=self.stop)
        self.send = self.link.send
        self.output = self.link.output

    def _step(self) -> int:
        session = self.session  # read from a connection's thread
        return session.step_count if session is not None else 0

    def on_command(self, command) -> None:
        """From a connection's thread: queue ``command``, or act on it at once."""
        if isinstance(command, p.Pause):
            self.stop.set()
        elif isinstance(command, p.SetControls):
            self._set_controls(command)
        elif isinstance(command, p.Interrupt):
            if self.busy:
                self._interrupt_asked = True
                os.kill(os.getpid(), signal.SIGINT)
        else:
            if isinstance(command, p.Quit):
                self.stop.set()
                if self.busy:  # a step stuck in the user's code: interrupted, so the trace ends
                    self._interrupt_asked = True
                    os.kill(os.getpid(), signal.SIGINT)
            self.commands.put(command)

    # --- the main thread ----------------------------------------------------------------------

    def main(self) -> int:
        signal.signal(signal.SIGINT, self._on_sigint)
        signal.signal(signal.SIGTERM, self._on_end_signal)
        signal.signal(signal.SIGHUP, self._on_sighup)
        self.link.start()
        try:
            return self._main()
        except _Ending as ending:
            for signum in (signal.SIGINT, signal.SIGTERM):  # a second one does not cut the ending short
                signal.signal(signum, signal.SIG_IGN)
            self._end_trace()
            self.output.sync(self.send)
            self.send(p.Exited(ending.status))
            self.say(f"gdtui: the trainer at {self.path} ended ({signal.Signals(ending.signum).name})")
            return ending.status

    def _main(self) -> int:
        poll = None if not self.detach_timeout_s else min(1.0, self.detach_timeout_s / 4)
        if self.args.wait:
            while not self.link.attached.wait(poll):
                if self.link.alone_too_long():
                    return 0
        self._run_command(self._load)
        while True:
            self._write_log_while_idle()
            try:
                command = self.commands.get(timeout=poll)
            except queue.Empty:
                if self.link.alone_too_long():
                    self._end_trace()
                    self.say(f"gdtui: no client for {self.detach_timeout_s / 60:g} min: the trainer at {self.path} ends")
                    return 0
                continue
            if isinstance(command, p.Quit):
                self._end_trace()
                self.output.sync(self.send)
                self.send(p.Exited(0))
                return 0
            if isinstance(command, _Attached):
                if command.number > self._greeted:
                    self._greet()
                continue
            self._run_command(lambda command=command: self._do(command))
            self.output.sync(self.send)
            self.send(p.Done(command.TYPE))

    def _write_log_while_idle(self) -> None:
        """The steps the trace log keeps in memory are written while no command waits, a batch at
        a time, so a command never waits long for them (an export writes the rest first)."""
        trace = self.trace
        while trace is not None and trace.pending and self.commands.empty():
            trace.write_pending(LOG_BATCH)

    def _end_trace(self) -> None:
        """The trace's end line (``error`` when the scenario never loaded); the temporary one is removed."""
        if self.trace is not None:
            self.trace.end(self.session, self.load_error)

    def say(self, line: str) -> None:
        """One line on the terminal a --listen trainer was started in, while it is there."""
        if self.console is not None:
            try:
                os.write(self.console, line.encode("utf-8", "replace") + b"\n")
            except OSError:  # the terminal hung up
                pass

    def _on_sigint(self, signum, frame) -> None:
        if self._interrupt_asked:  # a client's interrupt: only a command in progress stops
            self._interrupt_asked = False
            if self.check.running:  # a gradient check stops between evaluations, its tensors restored
                self.check.asked = True
            elif self.busy:
                raise KeyboardInterrupt
            return
        self._end_signal = signum
        raise _Ending(signum)  # Ctrl-C at a --listen trainer's terminal, or kill -INT

    def _on_end_signal(self, signum, frame) -> None:
        self._end_signal = signum
        raise _Ending(signum)

    def _on_sighup(self, signum, frame) -> None:
        """The terminal or SSH session went away: a run pauses after its step, and the trainer
        waits for a client. (A thread sets the event: the main thread may hold its lock now.)"""
        threading.Thread(target=self.stop.set, name="gdtui-hangup", daemon=True).start()

    def _run_command(self, fn) -> None:
        self.busy = True
        try:
            fn()
        except KeyboardInterrupt:
            self.busy = False
            self._interrupted()
        except Exception as exc:  # noqa: BLE001 - an engine failure is told to the client; the trainer lives on
            self.send(p.Error(f"gdtui: {type(exc).__name__}: {exc}"))
        finally:
            self.busy = False
        if self._end_signal is not None:  # the loader (or the user's `except BaseException`) swallowed it
            raise _Ending(self._end_signal)

    def _interrupted(self) -> None:
        """A KeyboardInterrupt (the client's interrupt) outside a run: during a load, a rewind, a
        diagnostic. The step in progress, if any, goes back to its start."""
        session = self.session
        if session is None:
            self.load_error = "interrupted while loading the scenario"
            self.send(p.LoadFailed(self.load_error))
            return
        self._roll_back()
        self.send(p.Stopped("interrupted", session.last, INTERRUPTED))
        self._frame()

    def _roll_back(self) -> None:
        """The phases run so far of an interrupted step are undone (a rewind of the step in progress)."""
        if self.session.mid_step:
            self.session.abandon_step()

    def _greet(self) -> None:
        self._greeted = self.link.attaches
        if self.session is not None:
            self.send(self._opened())
        elif self.load_error is not None:
            self.send(p.LoadFailed(self.load_error))

    def _opened(self, warning: str | None = None) -> p.Opened:
        trace = self.trace.path if self.trace is not None else None
        return p.Opened(p.for_screen(self.session.state()), self.charts.views, warning, str(trace) if trace is not None else None)

    def _load(self) -> None:
        from gdtui.cli import configure
        from gdtui.engine.conditions import ConditionError
        from gdtui.engine.display import ChartSource, TraceLog
        from gdtui.engine.errors import ScenarioError
        from gdtui.engine.session import Session

        self.output.mark(0)
        args = self.args
        warning = None
        reset = self.session is not None
        if reset:
            # The scenario's module and its tensors may be a reference cycle: freed now, not later.
            import gc

            try:
                self.session.reset()
            except ScenarioError as exc:
                self.send(p.Error(f"{exc} (the previous session is kept)", "reset"))
                return
            finally:
                gc.collect()
            self.trace.start(self.session.state(), reset=True)
        else:
            if self.trace is None:
                # lazy: the temporary log keeps a run's steps and writes them while no command waits
                self.trace = TraceLog(self._trace_writer(), args.seed, args.trace_max_elements, lazy=True)
            from gdtui.cli import session_options

            try:
                session = Session(args.scenario, **session_options(args, watch_activations=True))
            except ScenarioError as exc:
                self.load_error = str(exc)
                self._greeted = self.link.attaches
                self.send(p.LoadFailed(self.load_error))
                self.say(f"{exc} (a client's reset loads it again)")
                return
            try:
                configure(session, args)
            except ConditionError as exc:
                warning = f"{exc}; k sets breakpoints"
            self.session = session
            self.charts = ChartSource(session)
            if self._chart_asked is not None:
                self.charts.view, self.charts.width = self._chart_asked
            self.trace.start(session.state())
        self.load_error = None
        self.charts.describe()
        self.output.sync(self.send)
        self._greeted = self.link.attaches
        self.send(self._opened(warning))
        if reset:
            self._frame()  # with the chart of the view in force

    def _trace_writer(self):
        """The user's --trace file, or None. A file that cannot be opened is said once, as a warning."""
        if not self.args.trace:
            return None
        from gdtui.engine.trace import TraceWriter

        try:
            return TraceWriter(self.args.trace, self.args.trace_max_elements, label=f"--trace {self.args.trace}")
        except OSError as exc:
            self.send(p.Error(f"--trace {self.args.trace}: cannot write it ({exc.strerror})", "reset"))
            return None

    def _frame(self, final: bool = True, notice: str | None = None, rate: float | None = None,
               chart: bool = True, state=None) -> None:
        """Send the session's state (``state``: the one a run's Frame event built) to the screen."""
        broken = self.trace.take_error() if final and self.trace is not None else None
        if broken:  # a full disk: said once, never dropped
            notice = "; ".join(n for n in (notice, broken) if n)
        frame = p.Frame(p.for_screen(state if state is not None else self.session.state()), self.charts.frame() if chart else None, final=final,
                        steps_per_s=rate, notice=notice)
        (self.send if final else self.link.send_latest)(frame)

    # --- commands -----------------------------------------------------------------------------

    def _do(self, command) -> None:
        from gdtui.engine import display
        from gdtui.engine.loop import StepError
        from gdtui.engine.runner import step_phase

        if isinstance(command, p.Reset) or self.session is None:
            if isinstance(command, p.Reset):
                self._load()
            elif isinstance(command, p.Chart):
                self._chart_asked = (command.view, max(2, int(command.width)))
            else:
                self.send(p.Error(f"the scenario did not load: {self.load_error}; reset tries again", command.TYPE))
            return
        session = self.session
        try:
            if isinstance(command, p.Step):
                self._steps(command.n, run=False, records=command.records)
            elif isinstance(command, p.Run):
                self._steps(command.limit, run=True)
            elif isinstance(command, p.Phase):
                self.output.mark(session.step_count + 1)
                record = step_phase(session, self.trace)
                if record is not None:
                    self.send(p.Stepped(record))
                self._frame(notice=display.nonfinite_notice(record) or session.take_replay_note())
            elif isinstance(command, p.Rewind):
                try:
                    undone = session.rewind(command.n)
                finally:
                    self.trace.rewind(session.step_count)
                self._frame(notice=session.take_replay_note() if undone else "nothing to rewind")
            elif isinstance(command, p.Chart):
                self._chart_asked = self.charts.view, self.charts.width = command.view, max(2, int(command.width))
                self.send(p.ChartReady(self.charts.frame()))
            elif isinstance(command, p.Detail):
                reports.detail(session, command.name, self.send)
            elif isinstance(command, p.Hints):
                reports.hints(session, self.send)
                self._frame(chart=False)
            elif isinstance(command, (p.GradientCheck, p.Compare, p.OptimizerState)):
                reports.diagnose(session, command, self.send, self.check)
            elif isinstance(command, p.Export):
                reports.export(session, self.trace, command.path, self.send)
        except StepError as exc:
            self.send(p.Error(str(exc), command.TYPE))
            self._frame()

    def _steps(self, limit: int | None, run: bool, records: bool = True) -> None:
        """Step n (``run`` false: whole steps, Stepped for each) or a run (paced frames, stop
        conditions), through gdtui.engine.runner.Run: Stopped, then the final frame."""
        from gdtui.engine import display
        from gdtui.engine.pacing import FramePacer
        from gdtui.engine.runner import EveryStep, Run, Stepped, StepPlan

        session = self.session
        self.stop.clear()
        schedule = FramePacer(detail=self.trace.detailed) if run else EveryStep(StepPlan())
        steps = Run(session, limit, schedule=schedule, trace=self.trace, conditions=run, paused=self.stop.is_set)
        rate = None
        self.output.throttle = run
        try:
            events = iter(steps)
            while True:
                self.output.mark(session.step_count + 1)  # what is written from now on is the next step's
                try:
                    event = next(events)
                except KeyboardInterrupt as exc:  # in this loop's own code, between two steps
                    steps.interrupt(exc)
                    break
                if type(event) is Stepped:
                    if records and not run:
                        self.send(p.Stepped(event.record))
                elif event is steps.stopped:
                    break
                else:  # a frame the pacer shows
                    rate = event.steps_per_s
                    self._frame(final=False, rate=rate, chart=event.chart, state=event.state)
        finally:
            self.output.throttle = False
        stopped = steps.stopped
        if stopped.reason == "interrupted":
            self._roll_back()
        self.output.sync(self.send)
        message = INTERRUPTED if stopped.reason == "interrupted" else stopped.message
        self.send(p.Stopped(stopped.reason, p.for_screen(stopped.record), message))
        if stopped.error:
            self.send(p.Error(stopped.error, "run" if run else "step"))
        notice = INTERRUPTED if stopped.reason == "interrupted" else display.stop_notice(stopped)
        self._frame(notice=notice, rate=rate if run else None)

    def _set_controls(self, command: p.SetControls) -> None:
        """At once, from the connection's thread, even during a run (see reports.set_controls)."""
        if self.session is None:
            self.send(p.Error(f"the scenario did not load: {self.load_error}; reset tries again", command.TYPE))
            return
        reports.set_controls(self.session, command, self.send)


#: What an interrupted step's Stopped says.
INTERRUPTED = "interrupted: the step in progress was rolled back"


class _Ending(BaseException):
    """SIGTERM, or a SIGINT that no client asked for: the trainer ends (its socket is removed).
    A BaseException, so that the user's ``except Exception`` does not keep it from ending."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum
        self.status = 128 + signum


@dataclass(frozen=True)
class _Attached:
    """Queued by a connection's thread: the ``number``th client attached; the main thread sends it
    the state, unless a load since sent it already."""

    number: int


def build_parser() -> argparse.ArgumentParser:
    from gdtui.cli import _count, _learning_rate, _megabytes, _minutes, _Parser, _seed

    parser = _Parser(prog="python -m gdtui.trainer",
                     description="Serve one scenario's step-debugger session on a Unix socket (gdtui's trainer process).")
    parser.add_argument("scenario", help="the scenario file; arguments after -- are its own")
    parser.add_argument("--socket", metavar="PATH", help="the socket to serve (default: one in gdtui's socket folder)")
    parser.add_argument("--wait", action="store_true", help="load the scenario once the first client attaches")
    parser.add_argument("--listen", action="store_true",
                        help="gdtui --listen: say where it listens on this terminal; wait for clients forever")
    parser.add_argument("--detach-timeout", type=_minutes, metavar="MINUTES",
                        help=f"end after MINUTES with no client (default {DETACH_TIMEOUT_MIN:g}; --listen: 0, forever)")
    parser.add_argument("--mode", choices=["manual", "optim"])
    parser.add_argument("--grad-source", choices=["autograd", "grad_fn"])
    parser.add_argument("--seed", type=_seed, default=0)
    parser.add_argument("--device", default="cpu", metavar="DEV")
    parser.add_argument("--lr", type=_learning_rate, metavar="LR")
    parser.add_argument("--trace", metavar="FILE", help="write every step to FILE (JSON Lines, or CSV for a .csv path)")
    parser.add_argument("--trace-max-elements", type=_count("elements"), default=4096, metavar="N")
    parser.add_argument("--history-mb", type=_megabytes, default=256, metavar="MB")
    parser.add_argument("--until", metavar="EXPR")
    parser.add_argument("--break", dest="breaks", action="append", default=[], metavar="EXPR")
    parser.add_argument("--stop-on-rise", type=_count("steps", least=1), metavar="K")
    parser.add_argument("--gradcheck-samples", type=_count("entries", least=1), default=4, metavar="N")
    parser.add_argument("--no-zero-grad", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    cut = argv.index("--") if "--" in argv else len(argv)
    args = build_parser().parse_args(argv[:cut])
    args.scenario_args = argv[cut + 1 :]
    return serve(args)


def serve(args: argparse.Namespace) -> int:
    """Serve ``args.socket`` (default: a new socket in gdtui's socket folder) until Quit, a signal
    that ends it, or the detach timeout; the socket is removed at the end. ``args`` holds the
    trainer parser's values (gdtui --listen passes its own, which has the same names)."""
    try:
        path = args.socket or os.path.join(p.socket_dir(), f"{Path(args.scenario).stem}-{os.getpid()}.sock")
        server = bind_socket(path)
    except (SocketInUse, p.ProtocolError) as exc:
        print(f"gdtui trainer: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"gdtui trainer: {path}: cannot serve a socket there ({exc.strerror})", file=sys.stderr)
        return 2
    console = None
    try:
        if args.listen:
            console = os.dup(1)  # fds 1 and 2 become the pseudo-terminal; this terminal gets a few lines
            sys.stdout.flush()
            os.write(console, (f"gdtui: {args.scenario} listens on {path} (pid {os.getpid()}); "
                               f"connect with: gdtui --connect {path}\n").encode("utf-8", "replace"))
        trainer = Trainer(args, server, path)
        trainer.console = console
        return trainer.main()
    finally:
        server.close()
        try:
            if stat.S_ISSOCK(os.lstat(path).st_mode):
                os.unlink(path)
        except OSError:
            pass
        if console is not None:
            os.close(console)


if __name__ == "__main__":
    status = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Threads the scenario started, and the client threads, must not keep a quitting trainer alive.
    os._exit(status)
