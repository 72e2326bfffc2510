"""Rewind history: checkpoints every few steps, and what each step since then was told to do.

A checkpoint is a :class:`Snapshot` of the state before one step. Between two
checkpoints the history keeps only each step's :class:`StepControls` (its mode,
learning rates, gradient source and whether zero_grad ran): restoring the
checkpoint and running those steps again gives the same numbers bit for bit, so
a rewind to any step after the oldest checkpoint is exact. Taking a snapshot
every step would cost more than a small model's step itself.

A checkpoint that leaves the history (past the budget, or undone by a rewind)
is kept as spare memory for the next snapshot to copy into (see :class:`Spares`),
so a long run at its budget takes no new memory for its checkpoints.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from gdtui.engine.records import GradSource, Mode, StepRecord
from gdtui.engine.snapshot import NO_SPARES, SNAPSHOT_OVERHEAD, Snapshot, Spares

MB = 2**20
#: Checkpoints are taken often enough that snapshots cost about this share of the stepping time...
CHECKPOINT_SHARE = 0.02
#: ...but at least every this many seconds of stepping, so a rewind replays at most that long.
REPLAY_SECONDS = 0.5
MAX_INTERVAL = 64
#: Memory one logged step holds: a pointer in the log (controls are shared between equal steps).
CONTROLS_NBYTES = 8


@dataclass(frozen=True)
class StepControls:
    """What the user had chosen for one step: enough to run it again."""

    mode: Mode
    lrs: tuple[float, ...]
    grad_source: GradSource
    zero_grad: bool
    #: The learning rates the user's change (+, -, l, --lr) wrote into the param groups before
    #: this step's update; None when gdtui left them to the scenario (and its scheduler).
    lr_written: tuple[float, ...] | None = None


def record_nbytes(record: StepRecord | None) -> int:
    """About how much memory a step record holds: Python floats are 24 bytes, plus 8 in their list."""
    if record is None:
        return 0
    views = [*record.params.values(), *record.grads.values(), *record.updates.values()]
    values = sum(len(v.flat) for v in views if v is not None and v.flat is not None)
    return 2048 + 600 * len(views) + 32 * values + sum(200 + len(h.message) for h in record.hints)


@dataclass
class Checkpoint:
    """The state before step ``step + 1``, and the record of step ``step`` (None at step 0)."""

    step: int
    snapshot: Snapshot
    record: StepRecord | None
    nbytes: int


class History:
    """Checkpoints (newest last) and the controls of every step since the oldest one.

    When the checkpoints outgrow ``budget`` bytes the oldest go; when one
    snapshot alone is larger than the budget, rewind is off and ``note`` says why.
    A checkpoint is due every ``every`` steps, or, with None, as often as
    :meth:`interval` finds from the measured step and snapshot times.
    """

    def __init__(self, budget: int, every: int | None = None):
        self.budget = budget
        self.every = every
        self._step_seconds = 0.0  # how long a step takes, its checkpoint left out, smoothed
        self._timed_steps = 0
        self._snapshot_seconds = 0.0  # how long the last snapshot took
        self._check_seconds = 0.0  # how long the last deferred NaN/Inf check before a checkpoint took
        self._checkpoints: deque[Checkpoint] = deque()
        #: The controls of steps oldest.step + 1 .. the newest finished step, in order.
        self._controls: deque[StepControls] = deque()
        self._bytes = 0
        self._dropped = False
        #: The last checkpoint to leave the history, whose tensors the next snapshot may reuse.
        self._spare: Snapshot | None = None
        self.off: str | None = None if budget > 0 else "rewind is off (--history-mb 0)"
        self.last: StepRecord | None = None

    @property
    def nbytes(self) -> int:
        """The memory the checkpoints and the step log are counted as holding."""
        return self._bytes

    @property
    def newest(self) -> Checkpoint | None:
        return self._checkpoints[-1] if self._checkpoints else None

    @property
    def oldest_step(self) -> int | None:
        """The earliest step a rewind can reach, or None when there is no checkpoint."""
        return self._checkpoints[0].step if self._checkpoints else None

    # --- when to take a checkpoint ---------------------------------------------------------

    def note_step(self, seconds: float) -> None:
        """How long a step took, its checkpoint left out: the mean of the first ten, so the first
        step's one-time costs fade fast, then an exponential mean."""
        self._timed_steps += 1
        self._step_seconds += max(0.1, 1 / self._timed_steps) * (seconds - self._step_seconds)

    def note_check(self, seconds: float) -> None:
        """How long the NaN/Inf check that a run deferred to this checkpoint took (Session.step's
        ``defer_checks``): it reads about as much as the snapshot copies, and counts with it."""
        self._check_seconds = seconds

    def interval(self) -> int:
        """Steps between checkpoints: snapshots (with the checks before them) cost about
        CHECKPOINT_SHARE of the stepping, and a rewind replays at most REPLAY_SECONDS (a step that
        takes longer gets a checkpoint each)."""
        if self.every is not None:
            return self.every
        step = self._step_seconds
        if not step:
            return 1
        wanted = math.ceil((self._snapshot_seconds + self._check_seconds) / (CHECKPOINT_SHARE * step))
        return max(1, min(wanted, MAX_INTERVAL, int(REPLAY_SECONDS / step)))

    def due(self, step: int) -> bool:
        """Whether the state before step ``step + 1`` is to be a checkpoint."""
        newest = self.newest
        return newest is None or step - newest.step >= self.interval()

    def take(self, step: int, estimate: int, capture: Callable[[Snapshot | None, Spares], Snapshot]) -> float:
        """Add the checkpoint before step ``step + 1`` if a snapshot of about ``estimate`` bytes of
        tensors fits: ``capture(previous, spares)`` takes it (see Snapshot.capture). Returns the
        seconds it took, 0 when none was taken."""
        if not self.admits(estimate):
            return 0.0
        start = time.perf_counter()
        newest = self.newest
        snapshot = capture(newest.snapshot if newest else None, self.spares(estimate))
        self._snapshot_seconds = time.perf_counter() - start
        self.push(step, snapshot)
        return self._snapshot_seconds

    # --- what it holds ---------------------------------------------------------------------

    def admits(self, estimate: int) -> bool:
        """Whether a snapshot of ``estimate`` bytes may be taken; turns rewind off when it never fits."""
        if self.off:
            return False
        if estimate > self.budget:
            self.off = f"rewind is off: one snapshot needs {estimate / MB:.0f} MB, over --history-mb {self.budget / MB:g}"
            self._checkpoints.clear()
            self._controls.clear()
            self._bytes = 0
            self._spare = None
            return False
        return True

    def spares(self, estimate: int) -> Spares:
        """Make room for a checkpoint whose tensors take ``estimate`` bytes (drop the oldest past the
        budget, keeping one) and return the memory it may copy into: the last checkpoint to go."""
        self._drop_past(self.budget - estimate - SNAPSHOT_OVERHEAD - record_nbytes(self.last))
        spare, self._spare = self._spare, None
        return Spares(spare) if spare is not None else NO_SPARES

    def push(self, step: int, snapshot: Snapshot) -> None:
        """Add the checkpoint before step ``step + 1``; drop the oldest ones past the budget."""
        nbytes = snapshot.nbytes + record_nbytes(self.last)
        self._checkpoints.append(Checkpoint(step, snapshot, self.last, nbytes))
        self._bytes += nbytes
        self._drop_past(self.budget)

    def _drop_past(self, limit: int) -> None:
        """Drop the oldest checkpoints while the history holds more than ``limit`` bytes, keeping one."""
        while self._bytes > limit and len(self._checkpoints) > 1:
            gone = self._checkpoints.popleft()
            self._bytes -= gone.nbytes
            for _ in range(self._checkpoints[0].step - gone.step):
                self._controls.popleft()
                self._bytes -= CONTROLS_NBYTES
            self._dropped = True
            self._spare = gone.snapshot

    def log(self, controls: StepControls, record: StepRecord) -> None:
        """Note a finished step (after the oldest checkpoint, if any)."""
        self.last = record
        if not self._checkpoints:
            return
        if self._controls and self._controls[-1] == controls:
            controls = self._controls[-1]  # share equal controls: a long run logs one pointer a step
        self._controls.append(controls)
        self._bytes += CONTROLS_NBYTES

    def controls_of(self, step: int) -> StepControls:
        """The controls step ``step`` ran with; it must be after the oldest checkpoint."""
        return self._controls[step - self._checkpoints[0].step - 1]

    def checkpoint_at(self, step: int) -> Checkpoint:
        """The newest checkpoint at or before ``step``, which must be at least ``oldest_step``."""
        return next(c for c in reversed(self._checkpoints) if c.step <= step)

    def go_back(self, target: int) -> tuple[Checkpoint, list[StepControls]]:
        """Forget every step after the newest checkpoint at or before ``target``.

        Returns that checkpoint and the controls of the steps from it to
        ``target``, to run again. ``target`` must be at least ``oldest_step``.
        """
        while self._checkpoints[-1].step > target:
            gone = self._checkpoints.pop()
            self._bytes -= gone.nbytes
            self._spare = gone.snapshot
        checkpoint = self._checkpoints[-1]
        keep = checkpoint.step - self._checkpoints[0].step
        replay = [self._controls[i] for i in range(keep, keep + target - checkpoint.step)]
        while len(self._controls) > keep:
            self._controls.pop()
            self._bytes -= CONTROLS_NBYTES
        self.last = checkpoint.record
        return checkpoint, replay

    def note(self, depth: int) -> str | None:
        """Why rewind reaches less far than the step count, or None when it reaches every step."""
        if self.off:
            return self.off
        if self._dropped:
            return f"rewind reaches the last {depth} steps (--history-mb {self.budget / MB:g})"
        return None
