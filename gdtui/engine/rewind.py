"""Going back in a session: rewind, making a light record whole, and the quiet run's deferred check.

All three restore a rewind checkpoint (see :mod:`gdtui.engine.history`) and run
the steps after it again as they first ran, which gives the same numbers bit
for bit in a deterministic scenario. :class:`Rewinder` does it for a
:class:`gdtui.engine.session.Session`: it owns the checkpoints (a
:class:`gdtui.engine.history.History`, which it takes as the session's steps
start) and the batches kept for them, what it compares the steps that run
again with, and which steps still wait for their NaN/Inf check. It moves the
session only through the session's methods: ``restore_checkpoint``,
``run_again``, ``abandon_step``.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections import deque
from typing import TYPE_CHECKING

from gdtui.engine.errors import ScenarioError
from gdtui.engine.health import HINT_LOOKBACK
from gdtui.engine.history import History, StepControls
from gdtui.engine.loop import StepError
from gdtui.engine.records import Hint, StepRecord
from gdtui.engine.runner import StepPlan

if TYPE_CHECKING:
    from gdtui.engine.session import Session

#: How steps that run again to reach a step are planned: light (the last one is whole when asked).
_LIGHT = StepPlan(whole=False)
_WHOLE = StepPlan()


class Rewinder:
    """A session's rewind checkpoints, and running steps again from them: rewind's, detail_last's
    and check_deferred's (see Session.step for the deferred checks).

    Every step that runs again after going back, in a replay or stepped by the user with the
    same controls, is compared with its first run, bit for bit: its loss, and at the step where
    the session went back from, every trained tensor and buffer. The first difference is kept
    for :meth:`take_note`, naming what the scenario holds that a snapshot cannot restore.
    """

    def __init__(self, session: Session, history: History):
        self.session = session
        self.history = history
        #: Set by the first step that ran again differently, or by the first rewind; read once by take_note.
        self.note: str | None = None
        self._warned_unrestored = False
        #: After going back: each step's first controls and loss, and the state's checksum at the
        #: end, to compare the steps that run again with (see _compare).
        self._again: deque[tuple[StepControls, float]] = deque()
        self._again_checksum: tuple[int, ...] | None = None
        #: With steps whose NaN/Inf check was deferred: the step count before the first of them.
        self.unchecked_from: int | None = None
        #: False once a deferred check found the optimizer's state non-finite though no step went
        #: NaN/Inf: every later check would run its steps again, so each step is checked instead.
        self.may_defer = True
        #: The record of the first step that went NaN/Inf, when the check after the last step found
        #: one (the session is then just after it); None else. See check_due.
        self.first_bad: StepRecord | None = None
        #: Where each step that went NaN/Inf had its NaN/Inf begin, once found (see explain): a
        #: step that runs again to the same NaN keeps it.
        self._origins: dict[int, str] = {}

    @property
    def depth(self) -> int:
        """How many finished steps rewind can undo."""
        oldest = self.history.oldest_step
        return 0 if oldest is None else self.session.step_count - oldest

    def checkpoint(self, grads_zero: bool) -> float:
        """As a step starts: take a rewind checkpoint of the session, when one is due (``grads_zero``:
        whether the gradients are all zero or None). Returns how long it took; 0 when none was due."""
        session, history = self.session, self.history
        if not history.due(session.step_count):
            return 0.0
        loop = session.loop
        return history.take(
            session.step_count,
            loop.snapshot_nbytes(grads_zero),
            lambda previous, spares: loop.snapshot(grads_zero, previous=previous, spares=spares),
        )

    def keep_batches(self) -> None:
        """Let the data stream keep the batches read since the oldest checkpoint, in the memory
        the checkpoints leave of the budget, so a rewind takes them from there (see BatchStream)."""
        stream, history = self.session.loop.stream, self.history
        if stream is None:
            return
        oldest = history.oldest_step
        since = None if oldest is None else history.checkpoint_at(oldest).snapshot.stream
        stream.keep(0 if history.off else max(0, history.budget - history.nbytes), since)

    def can_remeasure(self) -> bool:
        """Whether rewind reaches the checkpoint that running the session's step in progress again,
        with the HINT_LOOKBACK steps before it, would start from (see rerun_from)."""
        oldest = self.history.oldest_step  # None with rewind off
        return oldest is not None and oldest <= self.session.step_count - HINT_LOOKBACK

    def take_note(self) -> str | None:
        """What the last rewind or replay found it could not restore, once; None when nothing."""
        note, self.note = self.note, None
        return note

    def note_unrestored(self) -> None:
        """At the first rewind, when no replay found a difference: name what may not be restored."""
        if self.note is not None or self._warned_unrestored:
            return
        names = self.session.loop.state.not_restored()
        if names:
            self._warned_unrestored = True
            self.note = (
                f"rewind may not be exact: gdtui does not snapshot {', '.join(names)}; "
                "a step that runs again differently will say so"
            )

    def note_unchecked(self, step_count: int) -> None:
        """The step after ``step_count`` left its NaN/Inf check to later."""
        if self.unchecked_from is None:
            self.unchecked_from = step_count

    def log(self, controls: StepControls, record: StepRecord) -> StepRecord:
        """A step just finished with ``controls``: keep them to run it again; when it runs again
        one that went back, compare it with its first run. Returns the record, with where its
        NaN/Inf began when an earlier run of the step found it (see explain)."""
        origin = self._origins.get(record.step) if record.nonfinite else None
        if origin is not None:
            record = _with_origin(record, origin)
        self.history.log(controls, record)
        self._compare(controls, record.step, record.loss)
        return record

    def explain(self, record: StepRecord) -> StepRecord:
        """``record``, the last step's, which went NaN/Inf: with where its NaN/Inf began.

        The step runs again from the checkpoint before it, under an OriginProbe (hooks on the
        model's modules, the torch calls of the scenario file and the gradients); the session is
        then after it again, as it was. Only this path pays for the probe. ``record`` as it is
        when its loss and gradients are finite (its update made the tensor it names NaN/Inf:
        that tensor is where it began), when rewind does not reach the step before it, or when
        running it again found nothing non-finite (the scenario is not deterministic: the
        replay note says so). Raises StepError as a replay does.
        """
        session = self.session
        oldest = self.history.oldest_step
        if (record.origin or record.nonfinite is None or session.mid_step or session.step_count != record.step
                or oldest is None or oldest > record.step - 1 or _update_made_it(record)):
            return record
        controls = self.history.controls_of(record.step)
        streak = session.measured_streak
        self.go_to(record.step - 1, detail=False)
        probe = session.loop.origin_probe()
        with probe:
            self._replay([controls], detail=False, purpose="to find where the NaN/Inf began")
        session.measured_streak = streak
        if probe.origin is None or not session.last.nonfinite:
            self.history.last = record
            return record
        self._origins[record.step] = probe.origin
        self.history.last = found = _with_origin(record, probe.origin)
        return found

    def check_due(self) -> None:
        """After a step: before the checkpoint that replaces the last one, make the checks the steps
        since it left to later. What it finds is :attr:`first_bad` until the next step's check."""
        self.first_bad = None
        if self.unchecked_from is None or not self.history.due(self.session.step_count):
            return
        checked = time.perf_counter()
        self.first_bad = self.check_deferred()
        if self.first_bad is None:  # (a replay's time is not the check's; once checks stop, they cost nothing)
            self.history.note_check(time.perf_counter() - checked if self.may_defer else 0.0)

    def take_first_bad(self) -> StepRecord | None:
        """The first step that went NaN/Inf, as the last step's check found it, once (see check_due)."""
        bad, self.first_bad = self.first_bad, None
        return bad

    def _expect(self, start: int, mid_step: bool) -> None:
        """Before going back to the checkpoint at or before ``start``: note what each step from
        there to now gave (its controls and loss), and the checksum of the state now."""
        session = self.session
        from_step = self.history.checkpoint_at(start).step
        self._again = deque(
            (self.history.controls_of(k), session.losses[k - 1]) for k in range(from_step + 1, session.step_count + 1)
        )
        self._again_checksum = None if mid_step or not self._again else session.loop.checksum()

    def _compare(self, controls: StepControls, step: int, loss: float) -> None:
        """A step just finished: when it runs again one that went back, compare it with its first run."""
        if not self._again:
            return
        first_controls, first_loss = self._again.popleft()
        if first_controls != controls:
            self._again.clear()  # the user chose differently: other numbers are expected
            return
        loop = self.session.loop
        if loss == first_loss or (math.isnan(loss) and math.isnan(first_loss)):
            if self._again or self._again_checksum is None or loop.checksum() == self._again_checksum:
                return
            what = f"step {step} ran again to the same loss but other values in the trained tensors or buffers"
        else:
            what = f"step {step} ran again with loss {loss!r}, not {first_loss!r} as the first time"
        self._again.clear()
        names = loop.state.not_restored(self.history.newest.snapshot.scenario if self.history.newest else None)
        why = (
            f"gdtui does not snapshot {', '.join(names)}"
            if names
            else "the scenario is not deterministic or keeps state outside its module (a closure, another module, a file)"
        )
        self.note = f"{what}: {why}; the numbers from here on differ from the first run"

    def detail_last(self) -> StepRecord | None:
        """The last step's record with every tensor summarised in full.

        A light record (see Session.step) is made whole by running its step
        again from the checkpoint before it; None when there is no record.
        """
        session = self.session
        last = session.last
        if last is None or last.whole or session.mid_step:
            return last
        oldest = self.history.oldest_step
        if oldest is None or oldest >= session.step_count:
            return last  # its step is out of rewind's reach
        self.go_to(session.step_count)
        return session.last

    def go_to(self, target: int, detail: bool = True, mid_step: bool = False) -> None:
        """Restore a checkpoint at or before step ``target``, then run the steps up to it again.

        With ``detail``, step ``target``'s record ends whole, hints and all: when
        its checkpoint holds a light record, it runs again too, and so do the
        HINT_LOOKBACK steps before it when they were not measured (a continuous
        run's steps between frames), since its hints compare with them.
        """
        session = self.session
        if self.unchecked_from is not None and target <= self.unchecked_from:
            self.unchecked_from = None  # every step left was checked
        start = self.rerun_from(target) if detail else target
        self._expect(start, mid_step)
        later = [self.history.controls_of(k) for k in range(start + 1, target + 1)]
        checkpoint, replay = self.history.go_back(start)
        session.restore_checkpoint(checkpoint)
        if replay or later:
            self._replay(replay + later, detail=detail)

    def rerun_from(self, target: int) -> int:
        """The step from which ``go_to(target)`` runs steps again (see there)."""
        history = self.history
        oldest = history.oldest_step
        at = history.checkpoint_at(target)
        if target <= oldest or (at.step == target and (at.record is None or at.record.whole)):
            return target
        before = history.checkpoint_at(target - 1)
        if before.step >= target - HINT_LOOKBACK and before.record is not None and not before.record.hints_whole:
            return max(target - 1 - HINT_LOOKBACK, oldest)  # the steps before it were not all measured
        return target - 1

    def _replay(self, steps: list[StepControls], detail: bool = True, purpose: str = "to rewind") -> None:
        """Run ``steps`` again as they ran the first time; the user's own controls stay as they are.

        A step that fails now (the scenario is not deterministic) leaves the
        session at the checkpoint, and the error says so.
        """
        session = self.session
        try:
            for i, controls in enumerate(steps, 1):
                session.run_again(controls, _WHOLE if detail and i == len(steps) else _LIGHT)
        except StepError as exc:
            self.go_to(self.history.newest.step, detail=False, mid_step=True)  # no second replay that could fail too
            self._again.clear()
            e = exc.error
            names = session.loop.state.not_restored()
            unsaved = f": gdtui does not snapshot {', '.join(names)}" if names else ""
            raise StepError(ScenarioError(
                f"{e.message} (while running it again {purpose}; the scenario is not deterministic{unsaved}); "
                f"back at step {session.step_count}",
                e.path,
                e.line,
            )) from None

    def check_deferred(self) -> StepRecord | None:
        """Check what the steps since the last check left unchecked (see Session.step).

        The parameters, the gradients and the optimizer's state are checked now:
        a NaN or an Inf that a step's gradient held lives on in one of them (in
        the state for an optimizer such as Rprop that keeps its parameters
        finite). When they are all finite, or when running the steps since the
        last check again, checked, finds no step that went NaN/Inf (a state
        that overflowed on its own, which a step's check does not look at),
        returns None; after the latter, every later step is checked as it runs
        instead. Else returns the record of the first step that went NaN/Inf,
        and the session is then just after it. A step in progress is undone
        first (a run stopped in it). Raises StepError when a step fails as it runs again (the scenario is not deterministic).
        """
        session = self.session
        if self.unchecked_from is not None and session.mid_step:
            session.abandon_step()  # the run stops mid-step (Ctrl-C landed in it): its start is what to check
        start = self.unchecked_from
        if start is None:
            return None
        self.unchecked_from = None
        # (a checkpoint that a replay took may have pushed the one there out of the budget: the
        # steps before the oldest cannot run again, and the search starts there)
        start = max(start, self.history.oldest_step)
        if session.loop.finite():
            return None
        steps = [self.history.controls_of(k) for k in range(start + 1, session.step_count + 1)]
        last, streak = session.last, session.measured_streak
        self.go_to(start, detail=False)
        for controls in steps:
            probe = session.loop.origin_probe()  # (no step here is a normal one: each may be the first bad)
            with probe:
                self._replay([controls], detail=False, purpose="to find the first step that went NaN/Inf")
            bad = session.last
            if bad.nonfinite:
                if probe.origin is not None and not _update_made_it(bad):  # (as explain decides)
                    self._origins[bad.step] = probe.origin
                    self.history.last = bad = _with_origin(bad, probe.origin)
                return bad
        # The optimizer's state overflowed on its own: every later check would run its steps again
        # to find nothing. Check each step from now on, and keep the last record as it was (whole).
        self.may_defer = False
        self.history.last = last
        session.measured_streak = streak
        return None


def _update_made_it(record: StepRecord) -> bool:
    """Whether the step's loss and gradients were finite, so its update made a tensor NaN/Inf."""
    return math.isfinite(record.loss) and all(g is None or g.finite for g in record.grads.values())


def _with_origin(record: StepRecord, origin: str) -> StepRecord:
    """``record`` with where its NaN/Inf began, and a hint that says it."""
    hint = Hint("nonfinite", f"{record.nonfinite} went NaN/Inf at step {record.step}; it began in {origin}")
    hints = tuple(h for h in record.hints if h.kind != "nonfinite")
    return dataclasses.replace(record, origin=origin, hints=(hint, *hints))
