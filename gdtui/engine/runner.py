"""The one run loop: step a session and yield what happened, for every front end.

:class:`Run` is the only place that steps a session in a loop. The headless
runner prints its events, the app's worker posts them, ``gdtui bench`` times
them. A run yields, in order:

* ``Stepped(record)`` after every step, once the trace has its line;
* ``Frame(record, state, steps_per_s, chart)`` after a step the schedule shows (the
  screen redraws; the time until the next event is what showing cost);
* one ``Stopped(reason, record, message)`` last. ``reason`` is ``limit``,
  ``paused``, ``condition``, ``nonfinite``, ``error``, ``interrupted`` or
  ``finished`` (a source that ends by itself, an attached script that returned:
  its step raises :class:`SourceFinished`).

The run steps any :class:`Source`: a scenario's Session, or an attached script
(gdtui.engine.script_source.ScriptSource).

:func:`step_phase` runs one phase (the phase key) and writes its step's trace
line, so a step's line has one writer, phase by phase or whole.

What each step measures is a frozen :class:`StepPlan`, decided by one
schedule object (:class:`EveryStep` for a headless run,
gdtui.engine.pacing.FramePacer for a continuous run on the screen). A plan may
leave a step's NaN/Inf check to later (see Session.step): before the run stops,
for any reason, the run makes those checks, and when one finds that an earlier
step went NaN/Inf, the run stops at that first bad step (``nonfinite``) and the
trace goes back to it. This module imports no torch: tensor work stays in the
session.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

from gdtui.engine.errors import StepError

if TYPE_CHECKING:
    from gdtui.engine.records import SessionState, StepRecord
    from gdtui.engine.session import Session

StopReason = Literal["limit", "paused", "condition", "nonfinite", "error", "interrupted", "finished"]


class SourceFinished(Exception):
    """A source's step found it at its end (an attached script returned): the run stops, ``finished``."""


class Source(Protocol):
    """What the run steps: gdtui.engine.session.Session (a scenario) or ScriptSource (a script)."""

    path: Any
    seed: int
    step_count: int
    last_step_seconds: float

    @property
    def mode(self) -> str: ...

    def step(self, plan: StepPlan) -> StepRecord:
        """One step; raises StepError (the user's code failed), SourceFinished or KeyboardInterrupt."""

    def state(self) -> Any:
        """Has ``device`` and ``params`` (the trace's start line)."""

    def triggered(self, record: StepRecord) -> list[Any]: ...

    def check_deferred(self) -> StepRecord | None: ...

    def take_first_bad(self) -> StepRecord | None:
        """The first bad step a step's own deferred check found, once; None when none."""

    def detail_last(self) -> None: ...

    def take_replay_note(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class StepPlan:
    """What one step measures (see Session.step).

    ``whole``: every tensor summarised in full (a step someone looks at). Else the step is
    light, for steps no one will look at (a continuous run between two frames, a quiet
    headless run): tensors of more than gdtui.engine.meter.LIGHT_VALUES elements (or
    max_values, if less) are summarised by their norms only (the norms of their updates too)
    when a hint or a stop condition reads them, else only checked for NaN and Inf; and a
    step that no hint or condition reads gets no hints and no update at all.

    ``hints``: a light step measures what the health hints read (norms, the update). False
    is for a light step whose hints no one will see (a continuous run's steps between
    frames; FramePacer measures the HINT_LOOKBACK steps before each one it shows, so that
    step's hints are whole): unless a stop condition reads its norms, it measures no update
    and gets no hints, and its large tensors are only checked for NaN and Inf.

    ``defer``: a light step may leave its large tensors' NaN/Inf check to the next
    checkpoint, for a run that reads nothing of it but its loss and whether it went NaN/Inf
    (a quiet headless run, a continuous run's steps between frames): when no hint or
    condition reads the norms, the large tensors are not read at all (that check is one more
    pass over the parameters and gradients, a noticeable part of an Adam step). They are
    checked once before each rewind checkpoint instead; when they hold a NaN or an Inf, the
    steps since the last check run again from the checkpoint, checked, up to the first that
    went NaN/Inf (see Session.take_first_bad). With rewind off, every step is checked.

    ``show``: the screen redraws after this step (a Frame follows its Stepped).
    """

    whole: bool = True
    hints: bool = True
    defer: bool = False
    show: bool = False


class Schedule(Protocol):
    """Decides each step's plan, as Cockpit's schedules decide when to compute (``should_compute``)."""

    #: Whether the last record is made whole before the run stops (a screen shows it).
    whole_at_stop: bool

    def plan(self, left: int | None) -> StepPlan:
        """The next step's plan; ``left`` counts the steps left with this one (None: no limit)."""

    def stepped(self, plan: StepPlan, seconds: float) -> None:
        """The step planned so took ``seconds``."""

    def frame(self) -> tuple[float | None, bool]:
        """A shown step's frame begins: the steps per second since the last one, and whether the chart's data is due."""

    def framed(self) -> None:
        """The consumer is done showing the frame (what it cost spaces the next one)."""


class EveryStep:
    """The same plan for every step, shown never: a headless run.

    A run whose steps nobody reads in full (``--quiet`` with no trace) makes
    them light and leaves their large tensors' NaN/Inf checks to each checkpoint.
    """

    whole_at_stop = False

    def __init__(self, plan: StepPlan):
        self._plan = plan

    @classmethod
    def headless(cls, *, quiet: bool, traced: bool) -> EveryStep:
        # quiet and untraced: no one sees a step's mean, std, min or max
        return cls(StepPlan(whole=traced or not quiet, hints=True, defer=True))

    def plan(self, left: int | None) -> StepPlan:
        return self._plan

    def stepped(self, plan: StepPlan, seconds: float) -> None:
        pass

    def frame(self) -> tuple[float | None, bool]:
        return None, False

    def framed(self) -> None:
        pass


@dataclass(frozen=True, slots=True)
class Stepped:
    """A step finished; ``record`` is its record (the trace already has it)."""

    record: StepRecord


@dataclass(frozen=True, slots=True)
class Frame:
    """The screen should redraw after ``record``'s step: ``state`` is what it shows (the
    source's state, built once here, with the gradient to show: SessionState.shown_grads),
    ``steps_per_s`` the rate since the last frame, and ``chart`` whether the chart's data is
    due too. A consumer sends or posts ``state``; it does not build the state again."""

    record: StepRecord
    state: SessionState
    steps_per_s: float | None
    chart: bool


@dataclass(frozen=True, slots=True)
class Stopped:
    """The run is over; the last event.

    ``record``: the last step's record (None when no step finished); for ``nonfinite``,
    the first step that went NaN/Inf, which the session is just after.
    ``message``: ``error``: the one-line error; ``nonfinite``: the tensor that went
    NaN/Inf; ``condition``: the first stop condition that holds (``hits`` has them all).
    ``steps``: the steps this run counted (those the trace has).
    ``error``: a step that failed, this stop's own (``reason`` ``error``) or one that ran
    again as the run stopped (the session is then back at a checkpoint), which leaves the
    reason as it was. ``note``: the session's replay note, taken once (a step ran again
    differently). ``interrupt``: the KeyboardInterrupt (Ctrl-C, or a subclass for SIGTERM
    and SIGHUP) that stopped it. ``finished``: the source ended by itself (an attached script
    returned); ``record`` is its last step's.
    """

    reason: StopReason
    record: StepRecord | None
    message: str | None = None
    steps: int = 0
    hits: tuple[str, ...] = ()
    error: str | None = None
    note: str | None = None
    interrupt: KeyboardInterrupt | None = None


Event = Stepped | Frame | Stopped


class RunTrace(Protocol):
    """What a run writes to: gdtui.engine.trace.TraceWriter, or the app's TraceLog."""

    def step(self, record: StepRecord) -> None: ...

    def rewind(self, step: int) -> None: ...


class Run:
    """Step ``session`` until ``limit`` steps (None: no limit) or a stop; iterate for the events.

    ``trace``: each step's line (and a rewind line where the run goes back). With
    ``trace_ends`` the trace is this run's own (a TraceWriter): the run writes its
    start and end lines, and a trace that cannot be written stops it (``error``).
    ``conditions``: stop where one of the session's stop conditions holds.
    ``paused``: asked before each step; True stops the run (``paused``).
    ``guard``: a context the step's count and its trace line are written in, so a
    signal cannot fall between them (see gdtui.engine.headless).

    A KeyboardInterrupt in a step stops the run (``interrupted``) after the checks it
    left to later; one raised in the consumer's code, between two events, is handed
    to :meth:`interrupt`, which does the same.
    """

    def __init__(
        self,
        session: Source,
        limit: int | None = None,
        *,
        schedule: Schedule,
        trace: RunTrace | None = None,
        trace_ends: bool = False,
        conditions: bool = True,
        paused: Callable[[], bool] | None = None,
        guard: Callable[[], AbstractContextManager[object]] = nullcontext,
    ):
        self.session = session
        self.limit = limit
        self.schedule = schedule
        self.trace = trace
        self.trace_ends = trace_ends and trace is not None
        self.conditions = conditions
        self.paused = paused
        self.guard = guard
        #: Steps counted so far (each with its trace line).
        self.done = 0
        #: The last step's record, or None.
        self.record: StepRecord | None = None
        #: The Stopped event, once the run has stopped.
        self.stopped: Stopped | None = None
        self._start = session.step_count
        self._traced = session.step_count  # the last step the trace has
        self._ended = False
        self._events = self._run()

    def __iter__(self) -> Iterator[Event]:
        return self

    def __next__(self) -> Event:
        return next(self._events)

    def interrupt(self, exc: KeyboardInterrupt) -> Stopped:
        """A KeyboardInterrupt raised in the consumer's code: stop as if it had landed in a step."""
        if self.stopped is None:
            try:
                return self._events.throw(exc)
            except KeyboardInterrupt:
                pass  # the run had not started
        self._events.close()
        self.stopped = self._stop("interrupted", interrupt=exc)
        return self.stopped

    def abandon(self) -> None:
        """The consumer cannot go on (its reader went away): end the trace, as interrupted."""
        self._events.close()
        self._end("interrupted")

    # --- the loop -----------------------------------------------------------------------

    def _run(self) -> Iterator[Event]:
        session, schedule, trace, limit = self.session, self.schedule, self.trace, self.limit
        conditions, paused, guard = self.conditions, self.paused, self.guard
        stopped: Stopped | None = None
        try:
            if self.trace_ends:
                stopped = self._start_trace()
            while stopped is None:
                if paused is not None and paused():
                    stopped = self._stop("paused")
                    break
                if limit is not None and self.done >= limit:
                    stopped = self._stop("limit")
                    break
                plan = schedule.plan(None if limit is None else limit - self.done)
                expected = session.step_count + 1
                try:
                    record = session.step(plan)
                except StepError as exc:
                    stopped = self._stop("error", message=str(exc), error=str(exc))
                    break
                except SourceFinished:
                    stopped = self._stop("finished")
                    break
                # The check the step made at its checkpoint, of the steps that left theirs to later,
                # may have found that one of them went NaN/Inf first: the session is just after it.
                record = session.take_first_bad() or record
                schedule.stepped(plan, session.last_step_seconds)
                with guard():  # a Ctrl-C waits until the step is counted and traced
                    self.record = record
                    self.done = record.step - self._start
                    if trace is not None:
                        if record.step < expected:  # the check at a checkpoint found this earlier step went NaN/Inf
                            trace.rewind(record.step - 1)
                        trace.step(record)
                        self._traced = record.step
                if record.step < expected:  # the first bad step was this one: the run stops there
                    stopped = self._stop("nonfinite", record.nonfinite)
                    break
                if self.trace_ends and trace.error:  # type: ignore[attr-defined]
                    # a full disk, ulimit -f: the trace ends on its last whole line
                    message = trace.take_error()  # type: ignore[attr-defined]
                    stopped = Stopped("error", record, message, self.done, error=message)
                    break
                yield Stepped(record)
                if record.nonfinite:
                    stopped = self._stop("nonfinite", record.nonfinite)
                    break
                if conditions:
                    hits = session.triggered(record)
                    if hits:
                        stopped = self._stop("condition", hits[0].text, hits=tuple(h.text for h in hits),
                                             until=hits[0].kind == "until")
                        break
                if plan.show:
                    rate, chart = schedule.frame()  # the state is built inside the frame's time: showing costs it
                    yield Frame(record, session.state(), rate, chart)
                    schedule.framed()
        except KeyboardInterrupt as exc:  # SIGTERM and SIGHUP too, in a headless run
            stopped = self._stop("interrupted", interrupt=exc)
        self.stopped = stopped
        yield stopped

    def _start_trace(self) -> Stopped | None:
        session, trace = self.session, self.trace
        state = session.state()
        trace.start(scenario=str(session.path), seed=session.seed, device=state.device,  # type: ignore[attr-defined]
                    mode=session.mode, params=dict(state.params))
        if trace.error:  # type: ignore[attr-defined]
            self._ended = True  # nothing more is written
            message = trace.take_error()  # type: ignore[attr-defined]
            return Stopped("error", None, message, error=message)
        return None

    def _stop(self, reason: StopReason, message: str | None = None, *, error: str | None = None,
              hits: tuple[str, ...] = (), until: bool = False, interrupt: KeyboardInterrupt | None = None) -> Stopped:
        """Settle before stopping: make the checks the steps left to later (the run stops at the
        first step that went NaN/Inf, whatever it stopped for), make the last record whole when
        the schedule says so, bring the trace to where the session is, and end it."""
        session, trace = self.session, self.trace
        try:
            try:
                bad = session.check_deferred()
            except KeyboardInterrupt:
                if interrupt is None:
                    raise  # the run stops as interrupted, and checks again
                bad = None  # a second Ctrl-C while stopping for the first
            if bad is not None:
                if trace is not None:
                    if bad.step <= self._traced:  # the trace goes back to it
                        trace.rewind(bad.step - 1)
                    trace.step(bad)
                    self._traced = bad.step
                self.record, self.done = bad, bad.step - self._start
                reason, message, error, hits, until, interrupt = "nonfinite", bad.nonfinite, None, (), False, None
        except StepError as exc:  # a step failed as it ran again: the session is back at a checkpoint
            error = str(exc)
        else:
            if self.schedule.whole_at_stop:
                try:
                    session.detail_last()
                except StepError as exc:
                    error = error or str(exc)
        if trace is not None and session.step_count < self._traced:
            trace.rewind(session.step_count)  # a replay that failed left the session at a checkpoint
            self._traced = session.step_count
        note = session.take_replay_note()  # a step that ran again differently (see Rewinder)
        if error is not None:
            self._end("error", error)
        elif reason == "condition":
            self._end("until" if until else "break", message)
        else:
            nonfinite = reason == "nonfinite"
            self._end(_TRACE_REASONS[reason], message if nonfinite else None,
                      self.record.origin if nonfinite and self.record is not None else None)
        return Stopped(reason, self.record, message, self.done, hits, error, note, interrupt)

    def _end(self, reason: str, message: str | None = None, origin: str | None = None) -> None:
        if self.trace_ends and not self._ended:
            self._ended = True
            if origin:
                self.trace.end(self.done, reason, message, origin)  # type: ignore[union-attr]
            else:
                self.trace.end(self.done, reason, message)  # type: ignore[union-attr]


def step_phase(session: Session, trace: RunTrace | None = None) -> StepRecord | None:
    """One phase of the step in progress (the phase key): the step's record when this phase
    finished it, once ``trace`` has its line, else None. A failed phase raises StepError."""
    record = session.step_phase()
    if record is not None and trace is not None:
        trace.step(record)
    return record


#: The trace's end reason for each stop.
_TRACE_REASONS = {"limit": "steps", "paused": "interrupted", "nonfinite": "nonfinite", "error": "error",
                  "interrupted": "interrupted", "finished": "finished"}

