"""Going back in a session: rewind, making a light record whole, and the quiet run's deferred check.

All three restore a rewind checkpoint (see :mod:`gdtui.engine.history`) and run
the steps after it again as they first ran, which gives the same numbers bit
for bit in a deterministic scenario. :class:`Rewind` is the part of
:class:`gdtui.engine.session.Session` that does it.
"""

from __future__ import annotations

import math
from collections import deque

from gdtui.engine.errors import ScenarioError
from gdtui.engine.health import HINT_LOOKBACK
from gdtui.engine.history import StepControls
from gdtui.engine.loop import StepError
from gdtui.engine.records import StepRecord
from gdtui.engine.snapshot import Snapshot


class Rewind:
    """Session's rewind, detail_last and check_deferred (see Session.step for the deferred checks).

    A part of :class:`gdtui.engine.session.Session`, which provides what it uses: ``loop``,
    ``step``, ``last``, ``step_count``, ``losses``, ``scalar_path``, the controls ``mode``,
    ``grad_source`` and ``skip_zero_grad``, and ``_history``, ``_phase``, ``_before``,
    ``_grads_zero``, ``_replaying``, ``_replay_lrs``, ``_unchecked_from``, ``_may_defer``,
    ``_measured_streak``, ``_again`` and ``_again_checksum``.

    Every step that runs again after going back, in a replay or stepped by the user with the
    same controls, is compared with its first run, bit for bit: its loss, and at the step where
    the session went back from, every trained tensor and buffer. The first difference is kept
    for :meth:`take_replay_note`, naming what the scenario holds that a snapshot cannot restore.
    """

    #: Set by the first step that ran again differently; read once by take_replay_note.
    replay_note: str | None = None

    @property
    def rewind_depth(self) -> int:
        """How many finished steps rewind can undo."""
        oldest = self._history.oldest_step
        return 0 if oldest is None else self.step_count - oldest

    def rewind(self, n: int = 1) -> int:
        """Go back to the state before the last ``n`` steps; return how many were undone.

        Mid-step, the step in progress counts as one. Parameters, buffers,
        optimizer state, every RNG and the data position are restored, so stepping
        again gives the same numbers bit for bit.
        """
        if n < 1 or self._history.oldest_step is None:
            return 0
        undone = 0
        if self._phase:
            undone, n = 1, n - 1
        k = min(n, self.rewind_depth)
        if undone + k:
            mid_step = bool(self._phase)
            # A learning rate the user set is a control, like the mode: it outlives the rewind of
            # the steps it was written in, and is written again before the next update.
            written = [self._history.controls_of(s).lr_written for s in range(self.step_count - k + 1, self.step_count + 1)]
            if mid_step:
                written.append(self._step_written)
            user_lr = next((w for w in reversed(written) if w is not None), None)
            self._phase = 0
            self._before = None
            self._go_to(self.step_count - k, mid_step=mid_step)
            if self._lr_override is None and user_lr is not None:
                self._lr_override = list(user_lr)
            self._note_unrestored()
        return undone + k

    def take_replay_note(self) -> str | None:
        """What the last rewind or replay found it could not restore, once; None when nothing."""
        note, self.replay_note = self.replay_note, None
        return note

    def _note_unrestored(self) -> None:
        """At the first rewind, when no replay found a difference: name what may not be restored."""
        if self.replay_note is not None or self._warned_unrestored:
            return
        names = self.loop.state.not_restored()
        if names:
            self._warned_unrestored = True
            self.replay_note = (
                f"rewind may not be exact: gdtui does not snapshot {', '.join(names)}; "
                "a step that runs again differently will say so"
            )

    def _expect_again(self, start: int, mid_step: bool) -> None:
        """Before going back to the checkpoint at or before ``start``: note what each step from
        there to now gave (its controls and loss), and the checksum of the state now."""
        from_step = self._history.checkpoint_at(start).step
        self._again = deque(
            (self._history.controls_of(k), self.losses[k - 1]) for k in range(from_step + 1, self.step_count + 1)
        )
        self._again_checksum = None if mid_step or not self._again else self.loop.checksum()

    def _compare_again(self, controls: StepControls, step: int, loss: float) -> None:
        """A step just finished: when it runs again one that went back, compare it with its first run."""
        if not self._again:
            return
        first_controls, first_loss = self._again.popleft()
        if first_controls != controls:
            self._again.clear()  # the user chose differently: other numbers are expected
            return
        if loss == first_loss or (math.isnan(loss) and math.isnan(first_loss)):
            if self._again or self._again_checksum is None or self.loop.checksum() == self._again_checksum:
                return
            what = f"step {step} ran again to the same loss but other values in the trained tensors or buffers"
        else:
            what = f"step {step} ran again with loss {loss!r}, not {first_loss!r} as the first time"
        self._again.clear()
        names = self.loop.state.not_restored(self._history.newest.snapshot.scenario if self._history.newest else None)
        why = (
            f"gdtui does not snapshot {', '.join(names)}"
            if names
            else "the scenario is not deterministic or keeps state outside its module (a closure, another module, a file)"
        )
        self.replay_note = f"{what}: {why}; the numbers from here on differ from the first run"

    def detail_last(self) -> StepRecord | None:
        """The last step's record with every tensor summarised in full.

        A light record (see Session.step) is made whole by running its step
        again from the checkpoint before it; None when there is no record.
        """
        last = self.last
        if last is None or last.whole or self._phase:
            return last
        oldest = self._history.oldest_step
        if oldest is None or oldest >= self.step_count:
            return last  # its step is out of rewind's reach
        self._go_to(self.step_count)
        return self.last

    def _go_to(self, target: int, detail: bool = True, mid_step: bool = False) -> None:
        """Restore a checkpoint at or before step ``target``, then run the steps up to it again.

        With ``detail``, step ``target``'s record ends whole, hints and all: when
        its checkpoint holds a light record, it runs again too, and so do the
        HINT_LOOKBACK steps before it when they were not measured (a continuous
        run's steps between frames), since its hints compare with them.
        """
        if self._unchecked_from is not None and target <= self._unchecked_from:
            self._unchecked_from = None  # every step left was checked
        start = self._rerun_from(target) if detail else target
        self._expect_again(start, mid_step)
        later = [self._history.controls_of(k) for k in range(start + 1, target + 1)]
        checkpoint, replay = self._history.go_back(start)
        self._restore(checkpoint.snapshot)
        self.step_count = checkpoint.step
        whole = checkpoint.record is None or checkpoint.record.hints_whole
        self._measured_streak = HINT_LOOKBACK if whole else 0
        del self.losses[self.step_count :]
        if self.scalar_path is not None:
            del self.scalar_path[self.step_count + 1 :]
        if replay or later:
            self._replay(replay + later, detail=detail)

    def _rerun_from(self, target: int) -> int:
        """The step from which ``_go_to(target)`` runs steps again (see there)."""
        history = self._history
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
        user = (self.mode, self.grad_source, self.skip_zero_grad)
        self._replaying = True
        try:
            for i, controls in enumerate(steps, 1):
                self.mode, self.grad_source, self.skip_zero_grad = controls.mode, controls.grad_source, not controls.zero_grad
                self._replay_lrs = controls.lrs
                self._replay_written = controls.lr_written
                self.step(detail=detail and i == len(steps))
        except StepError as exc:
            self._phase = 0
            self._before = None
            self._go_to(self._history.newest.step, detail=False, mid_step=True)  # no second replay that could fail too
            self._again.clear()
            e = exc.error
            names = self.loop.state.not_restored()
            unsaved = f": gdtui does not snapshot {', '.join(names)}" if names else ""
            raise StepError(ScenarioError(
                f"{e.message} (while running it again {purpose}; the scenario is not deterministic{unsaved}); "
                f"back at step {self.step_count}",
                e.path,
                e.line,
            )) from None
        finally:
            self.mode, self.grad_source, self.skip_zero_grad = user
            self._replay_lrs = None
            self._replay_written = None
            self._replaying = False

    def _restore(self, snap: Snapshot) -> None:
        self._grads_zero = snap.grads is None or snap.grads == "zeros"
        self.loop.restore(snap)

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
        if self._unchecked_from is not None and self._phase:
            self._abandon_step()  # the run stops mid-step (Ctrl-C landed in it): its start is what to check
        start = self._unchecked_from
        if start is None:
            return None
        self._unchecked_from = None
        # (a checkpoint that a replay took may have pushed the one there out of the budget: the
        # steps before the oldest cannot run again, and the search starts there)
        start = max(start, self._history.oldest_step)
        if self.loop.finite():
            return None
        steps = [self._history.controls_of(k) for k in range(start + 1, self.step_count + 1)]
        last, streak = self.last, self._measured_streak
        self._go_to(start, detail=False)
        for controls in steps:
            self._replay([controls], detail=False, purpose="to find the first step that went NaN/Inf")
            if self.last.nonfinite:
                return self.last
        # The optimizer's state overflowed on its own: every later check would run its steps again
        # to find nothing. Check each step from now on, and keep the last record as it was (whole).
        self._may_defer = False
        self._history.last, self._measured_streak = last, streak
        return None
