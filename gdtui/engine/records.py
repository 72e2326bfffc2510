"""Frozen records that cross from the engine to the screen, the trace and tests.

Everything here is plain Python: floats, ints, strings, tuples and nested lists.
No record ever holds a live tensor.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, Mapping

Mode = Literal["manual", "optim"]
GradSource = Literal["autograd", "grad_fn"]

#: The five phases of one optimizer step, in the order they run.
PHASES: tuple[str, ...] = ("forward", "loss", "backward", "update", "zero_grad")

EMPTY: Mapping[str, Any] = MappingProxyType({})


def frozen_map(items: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """A read-only mapping, so a record cannot be changed after it is built."""
    return MappingProxyType(dict(items)) if items else EMPTY


def nest(flat: list[float], shape: tuple[int, ...]) -> Any:
    """The nested list ``tolist()`` gives for ``shape``, from the values in order."""
    if not shape:
        return flat[0]
    if len(shape) == 1:
        return list(flat)
    step = math.prod(shape[1:])
    return [nest(flat[i * step : (i + 1) * step], shape[1:]) for i in range(shape[0])]


@dataclass(frozen=True)
class TensorView:
    """A tensor as the screen and the trace see it.

    ``values`` is what ``tensor.tolist()`` gives (a float for a 0-d tensor)
    when the tensor has at most the session's ``max_values`` elements, else None.
    The view stores those numbers flat (``flat``) and nests them on first use:
    a step of a 500-tensor model builds 1500 views, and most are never printed.
    The statistics are always there. ``std`` is the population std (correction 0),
    so a one-element tensor has std 0, not NaN.
    """

    shape: tuple[int, ...]
    dtype: str
    mean: float
    std: float
    min: float
    max: float
    norm: float
    nan: int = 0
    inf: int = 0
    flat: list[float] | None = None

    @functools.cached_property
    def values(self) -> Any:
        if self.flat is None:
            return None
        return nest(self.flat, self.shape)

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def finite(self) -> bool:
        return self.nan == 0 and self.inf == 0

    def summary(self) -> dict[str, Any]:
        return {
            "shape": list(self.shape),
            "mean": self.mean,
            "std": self.std,
            "min": self.min,
            "max": self.max,
            "norm": self.norm,
        }

    def to_json(self, max_elements: int | None = None) -> Any:
        """Values when the view carries them (and has at most ``max_elements``), else the summary dict."""
        if self.flat is not None and (max_elements is None or self.numel <= max_elements):
            return self.values
        return self.summary()


@dataclass(frozen=True)
class DeadUnits:
    """Units of one ReLU whose output was 0 for every sample of the batch."""

    site: str  # the module that fed the ReLU, or "relu #k"
    units: tuple[int, ...]
    width: int
    samples: int
    since: tuple[int, ...]  # the step each unit was first seen dead (in a row)


@dataclass(frozen=True)
class Hint:
    kind: str  # dead_relu, vanishing, exploding, update_ratio, diverging, frozen, untracked, accumulating
    message: str
    tensor: str | None = None


@dataclass(frozen=True)
class StepRecord:
    """What one finished optimizer step did.

    ``loss`` and ``metrics`` were computed at the parameters before the update;
    ``params`` are the values after the update, ``grads`` the gradients the update
    used and ``updates`` the change it made (after minus before).
    """

    step: int
    epoch: int | None
    batch: int | None
    mode: Mode
    grad_source: GradSource
    lr: float
    loss: float
    params: Mapping[str, TensorView]
    grads: Mapping[str, TensorView | None]
    updates: Mapping[str, TensorView]
    metrics: Mapping[str, float] = field(default_factory=lambda: EMPTY)
    #: The first tensor that went NaN/Inf ("loss", a param name, or "grad of NAME").
    nonfinite: str | None = None
    #: False when the user skipped zero_grad, so the gradients add up.
    zero_grad: bool = True
    dead_units: tuple[DeadUnits, ...] = ()
    #: For each tensor, how many steps in a row it has not changed.
    unchanged: Mapping[str, int] = field(default_factory=lambda: EMPTY)
    hints: tuple[Hint, ...] = ()

    @property
    def grad_norm(self) -> float:
        """The global gradient norm, over every trained tensor."""
        return math.sqrt(sum(g.norm**2 for g in self.grads.values() if g is not None))

    def update_ratio(self, name: str) -> float:
        """‖Δ‖/‖p‖ for one tensor: how big the step was compared to the weights."""
        p = self.params[name].norm
        d = self.updates[name].norm
        if p == 0:
            return math.inf if d else 0.0
        return d / p


@dataclass(frozen=True)
class SessionState:
    """Everything the screen shows, at one moment between two phases."""

    title: str
    path: str
    device: str
    step: int  # finished steps
    next_phase: str
    epoch: int | None
    batch: int | None
    mode: Mode
    grad_source: GradSource
    lr: float
    #: The loss of the step in progress once its loss phase ran, else the last step's.
    loss: float | None
    params: Mapping[str, TensorView]
    grads: Mapping[str, TensorView | None]
    last: StepRecord | None
    rewind_depth: int
    #: Why rewind reaches less far than the step count, or is off; None when it reaches every step.
    history_note: str | None
    has_grad_fn: bool
    notes: tuple[str, ...] = ()
    #: Health findings: the last step's, plus those about the scenario itself.
    hints: tuple[Hint, ...] = ()
    skip_zero_grad: bool = False
    #: The stop conditions in force, as the user typed them.
    conditions: tuple[str, ...] = ()
