"""The charts' records: frozen plain-Python values, no torch.

gdtui.engine.charts computes them next to the scenario's tensors; they live here
so that a process with no torch (the screen, a client of a trainer, the protocol)
can build, read and carry them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

Points = tuple[tuple[float, ...], tuple[float, ...]]  # (xs, ys)


@dataclass(frozen=True)
class LossSeries:
    """Loss per step, downsampled to at most ``width`` points."""

    steps: tuple[int, ...]
    losses: tuple[float, ...]
    total: int  # how many steps the series covers


@dataclass(frozen=True)
class ModelFit:
    """The model against the data.

    ``kind`` is "curve" (one input feature: data points and the model's curve)
    or "boundary" (two features, binary target: the points of each class and
    where the model's output crosses ``threshold``).
    """

    kind: str
    data: Points  # curve: (x, target); boundary: class-0 points
    other: Points  # curve: (grid x, model(grid x)); boundary: class-1 points
    boundary: Points = ((), ())
    threshold: float = 0.5


@dataclass(frozen=True)
class LossLandscape:
    """The loss over a grid of one or two scalar parameters, with the path taken."""

    names: tuple[str, ...]
    axes: tuple[tuple[float, ...], ...]  # one grid axis per parameter
    #: one parameter: the loss at each grid value; two: contour points per level.
    losses: tuple[float, ...]
    contours: tuple[tuple[float, Points], ...]
    path: tuple[tuple[float, ...], ...]

    def covers(self, path: Sequence[Sequence[float]]) -> bool:
        return all(ax[0] <= p[i] <= ax[-1] for p in path for i, ax in enumerate(self.axes))


@dataclass(frozen=True)
class Histogram:
    """Counts of a tensor's finite values in equal bins from ``lo`` to ``hi``."""

    lo: float
    hi: float
    counts: tuple[int, ...]
    nonfinite: int

    @property
    def centers(self) -> tuple[float, ...]:
        n = len(self.counts)
        width = (self.hi - self.lo) / n if n else 0.0
        return tuple(self.lo + (i + 0.5) * width for i in range(n))


@dataclass(frozen=True)
class ChartFrame:
    """One chart view's data at one step: ``payload`` is a LossSeries, ModelFit or LossLandscape, or None."""

    view: str  # "loss" | "fit" | "landscape"
    payload: Any
    step: int
