"""The headless runner: step a session N times (gdtui.engine.runner.Run), print a line per step; the run writes the trace.

Exit statuses: 0 done, 1 a gradient check failed, 2 scenario error, 3 NaN/Inf, 130 Ctrl-C
(128 + the signal: 143 SIGTERM, 129 SIGHUP). A closed stdout raises BrokenPipeError, after the
trace's end line.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

from gdtui.engine.records import StepRecord
from gdtui.engine.runner import EveryStep, Run, Stepped, Stopped
from gdtui.engine.session import Session
from gdtui.engine.summarize import format_number, format_values
from gdtui.engine.trace import TraceWriter

EXIT_OK, EXIT_CHECK_FAILED, EXIT_ERROR, EXIT_NONFINITE, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

#: Tensors with at most this many elements are printed on the step line.
LINE_VALUES = 6


def step_line(r: StepRecord, batches: bool = False) -> str:
    """``step 3  loss 0.5011699  w [[2.5405]]  b [[1.65869]]``, plus metrics, and epoch/batch with ``batches``."""
    parts = [f"step {r.step:>4}"]
    if batches:
        parts.append(f"epoch {r.epoch} batch {r.batch}")
    parts.append(f"loss {format_number(r.loss, 7)}")
    parts += [f"{name} {format_number(value, 5)}" for name, value in r.metrics.items()]
    for name, view in r.params.items():
        if view.flat is not None and view.numel <= LINE_VALUES:
            parts.append(f"{name} {format_values(view.values, 6)}")
    return "  ".join(parts)


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised where Ctrl-C raises KeyboardInterrupt: every path that ends an
    interrupted run (its trace's end line, the check of the steps left unchecked) ends these too."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def interrupted_status(exc: KeyboardInterrupt) -> int:
    """128 + the signal's number, as a shell reports a process the signal ended: 130 for Ctrl-C."""
    return 128 + getattr(exc, "signum", signal.SIGINT)


def interrupted_how(exc: KeyboardInterrupt) -> str:
    return f"stopped by {exc.args[0]}" if isinstance(exc, Terminated) else "interrupted"


#: SIGTERM and SIGHUP stop a headless run as Ctrl-C does; by default they end the process at
#: once, and the trace without its end line.
_TERMINATING = tuple(s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)) if s)


def _raise_terminated(signum, frame) -> None:
    raise Terminated(signum)


@contextmanager
def stop_signals() -> Iterator[None]:
    """SIGTERM and SIGHUP raise Terminated while in this block (on the main thread, where the
    process has no handler of its own for them)."""
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for signum in _TERMINATING:
            if signal.getsignal(signum) is signal.SIG_DFL:
                previous[signum] = signal.signal(signum, _raise_terminated)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class _CtrlC:
    """Ctrl-C raises KeyboardInterrupt as usual (SIGTERM and SIGHUP, Terminated), except inside
    :meth:`held`, where it waits for the block's end: a step's count and its trace line go together
    (Python raises a pending KeyboardInterrupt as soon as a C call returns, so one landing in the
    line's write left the trace's end line a step short). Only on the main thread, and only for a
    signal that has Python's own handler (or stop_signals').
    """

    def __init__(self) -> None:
        self._held = False
        self._pending: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> _CtrlC:
        if threading.current_thread() is threading.main_thread():
            ours = {signal.SIGINT: (signal.default_int_handler,)}
            ours.update({signum: (signal.SIG_DFL, _raise_terminated) for signum in _TERMINATING})
            for signum, handlers in ours.items():
                if signal.getsignal(signum) in handlers:
                    self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    @staticmethod
    def _interrupt(signum: int) -> KeyboardInterrupt:
        return KeyboardInterrupt() if signum == signal.SIGINT else Terminated(signum)

    def _handle(self, signum, frame) -> None:
        if not self._held:
            raise self._interrupt(signum)
        self._pending = self._pending or signum

    @contextmanager
    def held(self) -> Iterator[None]:
        self._held = True
        try:
            yield
        finally:
            self._held = False
        if self._pending:
            signum, self._pending = self._pending, None
            raise self._interrupt(signum)


def run_headless(
    session: Session,
    steps: int,
    *,
    trace: TraceWriter | None = None,
    quiet: bool = False,
    hints: bool = False,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Print the events of gdtui.engine.runner.Run: a line per step (``quiet``: the last only),
    and how the run stopped; return the exit status."""
    out = out or sys.stdout
    err = err or sys.stderr
    batches = session.scenario.batches is not None
    with _CtrlC() as ctrl_c:
        run = Run(session, steps, schedule=EveryStep.headless(quiet=quiet, traced=trace is not None),
                  trace=trace, trace_ends=True, guard=ctrl_c.held)
        try:
            try:
                for event in run:
                    if not quiet and type(event) is Stepped:
                        record = event.record
                        print(step_line(record, batches), file=out, flush=True)
                        if hints:
                            for hint in record.hints:
                                print(f"       ! {hint.message}", file=out)
            except KeyboardInterrupt as exc:  # in a print: stop as if it had landed in a step
                run.interrupt(exc)
            return _stopped(run.stopped, session, quiet, batches, out, err)
        except KeyboardInterrupt as exc:  # in the lines that say how it stopped
            print(f"{interrupted_how(exc)} after {run.done} steps", file=err)
            return interrupted_status(exc)
        except BrokenPipeError:  # the reader of the step lines is gone (| head): the CLI exits quietly
            run.abandon()
            raise


def _stopped(stopped: Stopped, session: Session, quiet: bool, batches: bool, out: TextIO, err: TextIO) -> int:
    """Say how the run stopped (its trace already ended); the exit status."""
    record = stopped.record
    if stopped.note:  # its replay ran a step differently (see Rewinder)
        print(f"{session.path}: {stopped.note}", file=err)
    if stopped.error:
        print(stopped.error, file=err)
        return EXIT_ERROR
    if stopped.reason == "nonfinite":
        if quiet:
            print(step_line(record, batches), file=out)
        where = f", first in {record.origin}" if record.origin else ""
        print(
            f"{session.path}: step {record.step}: {record.nonfinite} became NaN/Inf{where}; "
            "lower the learning rate (--lr) or check the data",
            file=err,
        )
        return EXIT_NONFINITE
    if stopped.reason == "interrupted":
        print(f"{interrupted_how(stopped.interrupt)} after {stopped.steps} steps", file=err)
        return interrupted_status(stopped.interrupt)
    if quiet:
        print(step_line(record, batches) if record else "0 steps", file=out)
    if stopped.reason == "condition":
        print(f"stopped after step {record.step}: {stopped.message}", file=out)
    return EXIT_OK
