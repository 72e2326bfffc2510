"""Rewind history: the snapshots before recent steps, within a memory budget, and their records."""

from __future__ import annotations

from collections import deque

from gdtui.engine.records import StepRecord
from gdtui.engine.snapshot import Snapshot

MB = 2**20


def record_nbytes(record: StepRecord | None) -> int:
    """About how much memory a step record holds: Python floats are 24 bytes, plus 8 in their list."""
    if record is None:
        return 4096
    views = [*record.params.values(), *record.grads.values(), *record.updates.values()]
    values = sum(len(v.flat) for v in views if v is not None and v.flat is not None)
    return 2048 + 600 * len(views) + 32 * values + sum(200 + len(h.message) for h in record.hints)


class History:
    """Snapshots (newest last) and the records of the steps they can undo, plus one before them.

    When the snapshots outgrow ``budget`` bytes the oldest go; when one snapshot
    alone is larger than the budget, rewind is off and ``note`` says why.
    """

    def __init__(self, budget: int):
        self.budget = budget
        self._snaps: deque[Snapshot] = deque()
        self._bytes = 0
        self._dropped = False
        self.off: str | None = None if budget > 0 else "rewind is off (--history-mb 0)"
        self._records: deque[StepRecord] = deque()

    def __len__(self) -> int:
        return len(self._snaps)

    @property
    def nbytes(self) -> int:
        """The memory the snapshots (and their records) are counted as holding."""
        return self._bytes

    @property
    def newest(self) -> Snapshot | None:
        return self._snaps[-1] if self._snaps else None

    def admits(self, estimate: int) -> bool:
        """Whether a snapshot of ``estimate`` bytes should be taken; turns rewind off when it never fits."""
        if self.off:
            return False
        if estimate > self.budget:
            self.off = f"rewind is off: one snapshot needs {estimate / MB:.0f} MB, over --history-mb {self.budget / MB:g}"
            self._snaps.clear()
            self._bytes = 0
            self._trim()
            return False
        return True

    def push(self, snap: Snapshot) -> None:
        # The step's record lives as long as its snapshot: count it with it (estimated from the last one).
        snap.nbytes += record_nbytes(self.last)
        self._snaps.append(snap)
        self._bytes += snap.nbytes
        while self._bytes > self.budget and len(self._snaps) > 1:
            self._bytes -= self._snaps.popleft().nbytes
            self._dropped = True
        self._trim()

    def pop(self) -> Snapshot:
        snap = self._snaps.pop()
        self._bytes -= snap.nbytes
        return snap

    def record(self, record: StepRecord) -> None:
        self._records.append(record)
        self._trim()

    def forget_after(self, step: int) -> None:
        """Drop the records of steps after ``step`` (after a rewind)."""
        while self._records and self._records[-1].step > step:
            self._records.pop()

    def _trim(self) -> None:
        while len(self._records) > len(self._snaps) + 1:
            self._records.popleft()

    @property
    def last(self) -> StepRecord | None:
        return self._records[-1] if self._records else None

    def note(self, depth: int) -> str | None:
        """Why rewind reaches less far than the step count, or None when it reaches every step."""
        if self.off:
            return self.off
        if self._dropped:
            return f"rewind reaches the last {depth} steps (--history-mb {self.budget / MB:g})"
        return None
