"""Frozen records that cross from the engine to the screen, the trace and tests.

Everything here is plain Python: floats, ints, strings, tuples and nested lists.
No record ever holds a live tensor.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

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


class _once:
    """A property computed on first use and kept in the instance (no lock, unlike functools'
    cached_property on Python 3.11: computing one twice in two threads is harmless)."""

    def __init__(self, fn):
        self.fn = fn
        self.__doc__ = fn.__doc__

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        value = obj.__dict__[self.name] = self.fn(obj)
        return value


def flat_stats(values: list[float]) -> tuple[float, float, float, float, float, int, int]:
    """Mean, std (population), min, max, norm, NaN count and Inf count of a non-empty list of floats."""
    n = len(values)
    nan = sum(1 for x in values if x != x)
    inf = sum(1 for x in values if x in (math.inf, -math.inf))
    if nan:
        return (math.nan,) * 5 + (nan, inf)  # type: ignore[return-value]
    mean = sum(values) / n
    std = math.sqrt(sum((x - mean) * (x - mean) for x in values) / n) if not inf else math.nan
    return mean, std, min(values), max(values), math.sqrt(sum(x * x for x in values)), 0, inf


@dataclass(frozen=True)
class TensorView:
    """A tensor as the screen and the trace see it.

    ``values`` is what ``tensor.tolist()`` gives (a float for a 0-d tensor)
    when the tensor has at most the session's ``max_values`` elements, else None.
    The view stores those numbers flat (``flat``) and nests them on first use:
    a step of a 500-tensor model builds 1500 views, and most are never printed.
    The statistics are always there: ``stats`` (mean, std, min, max, norm, NaN
    and Inf counts) for a tensor summarised on its device, computed from
    ``flat`` on first use otherwise. ``std`` is the population std (correction
    0), so a one-element tensor has std 0, not NaN.

    ``norm_only``: a large tensor of a step no one looks at (between two frames
    of a continuous run) is summarised by its norm and NaN/Inf counts alone;
    mean, std, min and max are NaN then. A norm of NaN with no NaN count means
    the norm was not computed either (``unmeasured``: a tensor only checked for NaN
    and Inf, or an update that no hint or stop condition needed).
    """

    shape: tuple[int, ...]
    dtype: str
    flat: list[float] | None = None
    stats: tuple[float, float, float, float, float, int, int] | None = None
    norm_only: bool = False

    def __post_init__(self):
        if self.flat is None and self.stats is None:
            raise ValueError("a TensorView needs its values (flat) or its statistics (stats)")

    @_once
    def values(self) -> Any:
        if self.flat is None:
            return None
        return nest(self.flat, self.shape)

    @_once
    def _stats(self) -> tuple[float, float, float, float, float, int, int]:
        return self.stats if self.stats is not None else flat_stats(self.flat)

    mean = property(lambda self: self._stats[0])
    std = property(lambda self: self._stats[1])
    min = property(lambda self: self._stats[2])
    max = property(lambda self: self._stats[3])
    nan = property(lambda self: self._stats[5])
    inf = property(lambda self: self._stats[6])

    @_once
    def norm(self) -> float:
        """‖t‖₂. From the values without the other statistics: the health hints read every norm of every step."""
        if self.stats is not None:
            return self.stats[4]
        return math.sqrt(sum(x * x for x in self.flat))

    @property
    def unmeasured(self) -> bool:
        """Whether not even the norm was computed (see ``norm_only``)."""
        return self.norm_only and math.isnan(self.norm) and not (self.nan or self.inf)

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @_once
    def finite(self) -> bool:
        if self.stats is not None:
            return self.stats[5] == 0 and self.stats[6] == 0
        return all(map(math.isfinite, self.flat))

    def summary(self) -> dict[str, Any]:
        if self.norm_only:
            if self.unmeasured:  # a NaN norm here would read as a tensor that went NaN
                return {"shape": list(self.shape)}
            return {"shape": list(self.shape), "norm": self.norm}
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
    #: Where that NaN/Inf began, when the step ran again to find it (gdtui.engine.nonfinite):
    #: "the output of module body.3 (Divide)", "the gradient of ...", "grad of NAME".
    origin: str | None = None
    #: False when the user skipped zero_grad, so the gradients add up.
    zero_grad: bool = True
    dead_units: tuple[DeadUnits, ...] = ()
    #: For each tensor, how many steps in a row it has not changed.
    unchanged: Mapping[str, int] = field(default_factory=lambda: EMPTY)
    hints: tuple[Hint, ...] = ()
    #: True when large tensors were summarised by their norms only (see TensorView.norm_only).
    light: bool = False
    #: False when the step, or one of the HINT_LOOKBACK steps before it that its hints compare
    #: with, did not measure what the hints read (a continuous run's steps between frames): its
    #: hints may miss a finding; Session.detail_last makes it whole.
    hints_whole: bool = True
    # Attached to a script (gdtui.engine.attach): the index of the optimizer that stepped, in the
    # order they first stepped; a step a GradScaler skipped for inf/NaN gradients, with its scale;
    # and clip_grad_norm_'s (norm before clipping, max_norm), where the step was clipped.
    optimizer: int | None = None
    skipped: bool = False
    scale: float | None = None
    clip_norm: tuple[float, float] | None = None

    @property
    def whole(self) -> bool:
        """Every tensor summarised in full and the hints whole: nothing for detail_last to redo."""
        return not self.light and self.hints_whole

    @_once
    def grad_norm(self) -> float:
        """The global gradient norm, over every trained tensor (the hints and the stop conditions
        read it several times a step: computed once)."""
        return math.sqrt(sum(g.norm**2 for g in self.grads.values() if g is not None))

    def update_ratio(self, name: str) -> float:
        """‖Δ‖/‖p‖ for one tensor: how big the step was compared to the weights."""
        p = self.params[name].norm
        d = self.updates[name].norm
        if p == 0:
            return math.inf if d else 0.0
        return d / p


@dataclass(frozen=True)
class ShownGrads:
    """The gradient the screen shows, one view per tensor, and which gradient it is.

    The engine decides it once (:func:`shown_grads`, called where the state is built); the
    table and the detail view only read it. Between two steps it is the gradient the last
    update used (``used``: step ``step``'s update), since the live one was just zeroed (or,
    with zero_grad skipped, is the same one and will add up). Mid-step, and before any step,
    it is the gradient the tensors hold now (``used`` False): ``step`` is the step in
    progress and ``after`` the last phase of it that ran (None before its first).
    """

    views: Mapping[str, TensorView | None]
    step: int
    used: bool
    after: str | None = None

    @property
    def label(self) -> str:
        """Which gradient this is, in a few words: ``used by step 3's update``, ``now, after backward``."""
        if self.used:
            return f"used by step {self.step}'s update"
        return f"now, after {self.after}" if self.after else "now"


def shown_grads(step: int, next_phase: str, grads: Mapping[str, TensorView | None],
                last: StepRecord | None) -> ShownGrads:
    """The gradient to show (see :class:`ShownGrads`) at ``step`` finished steps, before
    ``next_phase``: ``last``'s when a step is over, else ``grads``, the live gradient."""
    if next_phase == PHASES[0] and last is not None:
        return ShownGrads(last.grads, last.step, True)
    if next_phase == PHASES[0]:
        return ShownGrads(grads, step, False)
    return ShownGrads(grads, step + 1, False, PHASES[PHASES.index(next_phase) - 1])


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
    #: The gradient the tensors hold now (None where a tensor has none). The screen shows ``shown_grads``.
    grads: Mapping[str, TensorView | None]
    last: StepRecord | None
    rewind_depth: int
    #: Why rewind reaches less far than the step count, or is off; None when it reaches every step.
    history_note: str | None
    has_grad_fn: bool
    #: The gradient the table and the detail view show, decided by the engine (see ShownGrads).
    shown_grads: ShownGrads
    notes: tuple[str, ...] = ()
    #: Health findings: the last step's, plus those about the scenario itself.
    hints: tuple[Hint, ...] = ()
    skip_zero_grad: bool = False
    #: The stop conditions in force, as the user typed them.
    conditions: tuple[str, ...] = ()
    #: Those of ``conditions`` that are the run's goal (--until: a run stops there) rather than breakpoints.
    until: tuple[str, ...] = ()
    # What the screen shows of the scenario itself, so that it needs no Session: the help text,
    # whether it reads batches from a loader, has an objective (no model), its step count, the
    # names a stop condition may use besides the built-in ones, and its file (export must not
    # overwrite it).
    description: str = ""
    loader: bool = False
    objective: bool = False
    target_steps: int | None = None
    metric_names: tuple[str, ...] = ()
    file: str = ""


# --- an attached script (gdtui.engine.script_source) ------------------------------------------


@dataclass(frozen=True)
class Capabilities:
    """What a Source can do, so that the screen dims the keys it cannot and says why in the help.

    ``phases``: the phase boundaries it can pause at. ``rewind``: "exact" (a scenario's steps run
    again from a checkpoint) or "state" (tensors, optimizer, schedulers, scaler and RNG restored;
    the script's own variables move on). ``missing``: what it cannot do, each with the reason.
    """

    phases: tuple[str, ...]
    rewind: str
    missing: Mapping[str, str] = field(default_factory=lambda: EMPTY)

    def why_not(self, what: str) -> str | None:
        """The reason ``what`` cannot work here, or None when it can."""
        return self.missing.get(what)


@dataclass(frozen=True)
class BatchArg:
    """One argument the root module was called with: ``x`` or ``args[0]``, a dict key, ``input_ids``.

    A tensor has its shape, dtype and view; anything else its short ``text`` (a repr).
    """

    name: str
    shape: tuple[int, ...] | None
    dtype: str | None
    view: TensorView | None = None
    text: str | None = None


@dataclass(frozen=True)
class SourcePanel:
    """The script's own lines around the call gdtui paused in, for a source panel (pudb-style).

    ``lines`` run from line ``first``; ``line`` is the one that called step() (or backward()).
    """

    file: str
    line: int
    first: int
    lines: tuple[str, ...]
    call: str  # "step()" or "backward()"


@dataclass(frozen=True)
class ScriptState:
    """Everything the screen shows of an attached script, at a pause or between steps.

    ``step``: the updates applied to what is shown (less than ``live`` after a rewind).
    ``pause``: the step whose pause this is (its gradients are ready, its update not done), or None
    between steps. ``loss_label``: "loss", or "sum of K micro-batch losses" under accumulation.
    ``lrs``: the learning rate of each param group of the optimizer that steps (``optimizer``).
    ``notes``: what the status line should say (a rewind that leaves the script's data position
    and variables where they are; an lr the script's scheduler overrode).
    """

    path: str
    device: str
    step: int
    live: int
    pause: int | None
    phase: str  # "backward" (paused after it, before the update), "update" (after it), "ended"
    mode: Mode
    optimizer: int | None
    optimizer_class: str | None
    lrs: tuple[float, ...]
    loss: float | None
    loss_label: str
    params: Mapping[str, TensorView]
    grads: Mapping[str, TensorView | None]
    last: StepRecord | None
    source: SourcePanel | None
    batch: tuple[BatchArg, ...]
    hints: tuple[Hint, ...]
    capabilities: Capabilities
    notes: tuple[str, ...] = ()
    rewind_depth: int = 0
    history_note: str | None = None
    conditions: tuple[str, ...] = ()
    until: tuple[str, ...] = ()
    clip_norm: tuple[float, float] | None = None
    skipped: bool = False
    scale: float | None = None
