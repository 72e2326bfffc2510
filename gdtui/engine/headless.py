"""The headless runner: step a session N times, print a line per step, write the trace.

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

from gdtui.engine.loop import StepError
from gdtui.engine.records import StepRecord
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
    out = out or sys.stdout
    err = err or sys.stderr
    if trace:
        state = session.state()
        trace.start(
            scenario=str(session.path),
            seed=session.seed,
            device=state.device,
            mode=session.mode,
            params=dict(state.params),
        )
        if trace.error:
            print(trace.take_error(), file=err)
            return EXIT_ERROR
    batches = session.scenario.batches is not None
    detail = trace is not None or not quiet  # quiet and untraced: no one sees a step's mean, std, min or max
    done = 0
    record: StepRecord | None = None
    ended = False

    def end(steps_done: int, reason: str, message: str | None = None) -> None:
        nonlocal ended
        if trace and not ended:
            ended = True
            trace.end(steps_done, reason, message)

    def stop_nonfinite(record: StepRecord) -> int:
        if quiet:
            print(step_line(record, batches), file=out)
        print(
            f"{session.path}: step {record.step}: {record.nonfinite} became NaN/Inf; "
            "lower the learning rate (--lr) or check the data",
            file=err,
        )
        end(done, "nonfinite", record.nonfinite)
        return EXIT_NONFINITE

    def stop_error(exc: StepError) -> int:
        print(exc, file=err)
        end(done, "error", str(exc))
        return EXIT_ERROR

    def settle() -> int | None:
        """Before the run stops for any reason: the exit status when a step that a quiet run left
        unchecked went NaN/Inf (Session.check_deferred), else None."""
        try:
            bad = session.check_deferred()
        except StepError as exc:
            return stop_error(exc)
        finally:
            note = session.take_replay_note()  # its replay ran a step differently (see Rewind)
            if note:
                print(f"{session.path}: {note}", file=err)
        return stop_nonfinite(bad) if bad else None

    with _CtrlC() as ctrl_c:
        try:
            for _ in range(steps):
                try:
                    # A quiet run checks large tensors for NaN/Inf at each checkpoint, not each step (see
                    # Session.step); before it stops for any other reason, settle finds the first bad step.
                    record = session.step(detail=detail, defer_checks=True)
                except StepError as exc:
                    stopped = settle()
                    return stop_error(exc) if stopped is None else stopped
                with ctrl_c.held():  # a Ctrl-C waits until the step is counted and traced
                    done += 1
                    if trace:
                        trace.step(record)
                if trace and trace.error:  # a full disk, ulimit -f: the trace ends on its last whole line
                    print(trace.take_error(), file=err)
                    return EXIT_ERROR
                if not quiet:
                    print(step_line(record, batches), file=out, flush=True)
                    if hints:
                        for hint in record.hints:
                            print(f"       ! {hint.message}", file=out)
                if record.nonfinite:
                    stopped = settle()
                    return stop_nonfinite(record) if stopped is None else stopped
                hits = session.triggered(record)
                if hits:
                    stopped = settle()
                    if stopped is not None:
                        return stopped
                    if quiet:
                        print(step_line(record, batches), file=out)
                    print(f"stopped after step {record.step}: {hits[0].text}", file=out)
                    end(done, "until" if hits[0].kind == "until" else "break", hits[0].text)
                    return EXIT_OK
            stopped = settle()
            if stopped is not None:
                return stopped
        except KeyboardInterrupt as exc:  # SIGTERM and SIGHUP too, as Terminated
            try:
                stopped = settle()  # a checked run would have stopped at the NaN already (mid-step too)
            except KeyboardInterrupt:
                stopped = None
            if stopped is not None:
                return stopped
            print(f"{interrupted_how(exc)} after {done} steps", file=err)
            end(done, "interrupted")
            return interrupted_status(exc)
        except BrokenPipeError:  # the reader of the step lines is gone (| head): the CLI exits quietly
            end(done, "interrupted")
            raise
    end(done, "steps")  # first: the final line may find the pipe closed
    if quiet:
        print(step_line(record, batches) if record else "0 steps", file=out)
    return EXIT_OK
