"""Going back in a session: rewind, making a light record whole, and the quiet run's deferred check.

All three restore a rewind checkpoint (see :mod:`gdtui.engine.history`) and run
the steps after it again as they first ran, which gives the same numbers bit
for bit in a deterministic scenario. :class:`Rewind` is the part of
:class:`gdtui.engine.session.Session` that does it.
"""

from __future__ import annotations

from gdtui.engine.health import HINT_LOOKBACK
from gdtui.engine.history import StepControls
from gdtui.engine.loop import StepError
from gdtui.engine.records import StepRecord
from gdtui.engine.errors import ScenarioError
from gdtui.engine.snapshot import Snapshot


class Rewind:
    """Session's rewind, detail_last and check_deferred (see Session.step for the deferred checks).

    A part of :class:`gdtui.engine.session.Session`, which provides what it uses: ``loop``,
    ``step``, ``last``, ``step_count``, ``losses``, ``scalar_path``, the controls ``mode``,
    ``grad_source`` and ``skip_zero_grad``, and ``_history``, ``_phase``, ``_before``,
    ``_grads_zero``, ``_replaying``, ``_replay_lrs``, ``_unchecked_from``, ``_may_defer`` and
    ``_measured_streak``.
    """

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
            self._phase = 0
            self._before = None
            self._go_to(self.step_count - k)
        return undone + k

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

    def _go_to(self, target: int, detail: bool = True) -> None:
        """Restore a checkpoint at or before step ``target``, then run the steps up to it again.

        With ``detail``, step ``target``'s record ends whole, hints and all: when
        its checkpoint holds a light record, it runs again too, and so do the
        HINT_LOOKBACK steps before it when they were not measured (a continuous
        run's steps between frames), since its hints compare with them.
        """
        if self._unchecked_from is not None and target <= self._unchecked_from:
            self._unchecked_from = None  # every step left was checked
        start = self._rerun_from(target) if detail else target
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
                self.step(detail=detail and i == len(steps))
        except StepError as exc:
            self._phase = 0
            self._before = None
            self._go_to(self._history.newest.step, detail=False)  # no second replay that could fail too
            e = exc.error
            raise StepError(ScenarioError(
                f"{e.message} (while running it again {purpose}; the scenario is not deterministic); "
                f"back at step {self.step_count}",
                e.path,
                e.line,
            )) from None
        finally:
            self.mode, self.grad_source, self.skip_zero_grad = user
            self._replay_lrs = None
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
