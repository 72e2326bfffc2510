"""Health hints: plain-language findings about a step, for a user whose loss won't go down.

Dead ReLU units are found while the forward runs: :class:`DeadUnitWatch` sees
every ``relu`` call (``torch.relu``, ``F.relu``, ``nn.ReLU``, ``Tensor.relu``)
through a TorchFunctionMode and notes the units whose output is 0 for every
sample of the batch. The other hints come from the step's record and the loss
history: vanishing or exploding gradients, update ratios far from 1e-3, a loss
that keeps rising, tensors that never change, and skipped zero_grad.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from gdtui.engine.conditions import RisingLoss
from gdtui.engine.records import DeadUnits, Hint, StepRecord

VANISHING = 1e-7
EXPLODING = 10.0
RATIO_LOW, RATIO_HIGH = 1e-5, 1e-1
RISING_STEPS = 3
FROZEN_STEPS = 3
#: How many steps before a step its hints read besides the loss: the step before ("exploding"
#: compares the gradient norms), and FROZEN_STEPS - 1 more unchanged steps ("frozen"). A
#: continuous run measures these before each step it shows (see FramePacer).
HINT_LOOKBACK = FROZEN_STEPS - 1

_RELU = {torch.relu, torch.relu_, F.relu, F.relu_, torch.Tensor.relu, torch.Tensor.relu_}


class DeadUnitWatch(TorchFunctionMode):
    """Notes the output of every ReLU during a forward pass; cheap, and changes no number."""

    def __init__(self, model: Any):
        super().__init__()
        self._producer: dict[int, str] = {}
        self._sites: list[tuple[str, torch.Tensor, int, int]] = []
        self._hooks = []
        if isinstance(model, nn.Module):
            for name, module in model.named_modules():
                if name and not isinstance(module, nn.ReLU):
                    self._hooks.append(module.register_forward_hook(self._note_producer(name)))

    @property
    def saw_relu(self) -> bool:
        """Whether the forward since ``start`` called a ReLU."""
        return bool(self._sites)

    def close(self) -> None:
        """Take the module hooks off: the watch is done with this model."""
        for hook in self._hooks:
            hook.remove()
        self._hooks.clear()

    def _note_producer(self, name: str):
        def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
            if isinstance(output, torch.Tensor):
                self._producer[id(output)] = name

        return hook

    def start(self) -> None:
        self._producer.clear()
        self._sites.clear()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func in _RELU and isinstance(out, torch.Tensor) and out.dim() > 0:
            a = out.detach()
            if a.dim() == 1:
                dead, samples = a.eq(0), 1
            elif a.numel():
                # A ReLU's output is >= 0 or NaN, so a unit is dead where its largest output is 0
                # (amax keeps a NaN, which is not dead); one reduction, no copy of the batch.
                dead, samples = a.amax(dim=(0, *range(2, a.dim()))).eq(0), a.shape[0]
            else:
                dead, samples = torch.ones(a.shape[1], dtype=torch.bool, device=a.device), a.shape[0]
            source = args[0] if args else None
            site = self._producer.get(id(source), f"relu #{len(self._sites) + 1}")
            self._sites.append((site, dead, dead.numel(), samples))
        return out

    def collect(self, step: int, previous: Sequence[DeadUnits]) -> tuple[DeadUnits, ...]:
        """The dead units of the forward just run, with one host transfer."""
        if not self._sites:
            return ()
        flags = torch.cat([d.reshape(-1).to("cpu", torch.bool) for _, d, _, _ in self._sites]).numpy()
        before = {(d.site, u): s for d in previous for u, s in zip(d.units, d.since)}
        found, pos = [], 0
        for site, _, width, samples in self._sites:
            units = tuple(np.flatnonzero(flags[pos : pos + width]).tolist())
            pos += width
            if units:
                since = tuple(before.get((site, u), step) for u in units)
                found.append(DeadUnits(site, units, width, samples, since))
        self._sites.clear()
        return tuple(found)


def _dead_story(d: DeadUnits) -> str:
    """``unit 1 died in step 2's update; units 0, 2 dead from the start``."""
    by_when: dict[int, list[int]] = {}
    for unit, since in zip(d.units, d.since):
        by_when.setdefault(since, []).append(unit)
    parts = []
    for since, units in sorted(by_when.items(), reverse=True):
        label = ("unit " if len(units) == 1 else "units ") + ", ".join(map(str, units))
        parts.append(f"{label} dead from the start" if since == 1 else f"{label} died in step {since - 1}'s update")
    return "; ".join(parts)


def untracked_tensors(namespace: Mapping[str, Any], model: Any, trained: Sequence[torch.Tensor]) -> list[str]:
    """Names of tensors that require grad but that the optimizer does not hold."""
    held = {id(t) for t in trained}
    names: list[str] = []
    if isinstance(model, nn.Module):
        names += [n for n, p in model.named_parameters() if p.requires_grad and id(p) not in held]
    seen = {id(p) for p in model.parameters()} if isinstance(model, nn.Module) else set()
    for var, value in namespace.items():
        if (
            isinstance(value, torch.Tensor)
            and value.requires_grad
            and value.is_leaf
            and id(value) not in held
            and id(value) not in seen
            and not var.startswith("_")
        ):
            names.append(var)
    return names


def first_nonfinite(loss: float, params: Mapping[str, Any], grads: Mapping[str, Any]) -> str | None:
    """The first tensor that went NaN/Inf: "loss", a param name, or "grad of NAME"."""
    if not math.isfinite(loss):
        return "loss"
    for name, view in params.items():
        if not view.finite:
            return name
    for name, view in grads.items():
        if view is not None and not view.finite:
            return f"grad of {name}"
    return None


def untracked_hints(names: Sequence[str]) -> tuple[Hint, ...]:
    return tuple(
        Hint("untracked", f"{n} requires grad but the optimizer does not hold it, so it never changes; add it to the optimizer", n)
        for n in names
    )


def step_hints(
    record: StepRecord,
    previous: StepRecord | None,
    losses: Sequence[float],
    *,
    unchanged: Mapping[str, int],
    skip_zero_grad: bool,
    untracked: Sequence[str] = (),
) -> tuple[Hint, ...]:
    """Findings about ``record``'s step, most serious first."""
    hints: list[Hint] = []
    for d in record.dead_units:
        hints.append(Hint(
            "dead_relu",
            f"dead ReLU after {d.site} ({len(d.units)} of {d.width} units, batch of {d.samples}): {_dead_story(d)}. "
            "A dead unit outputs 0 for every sample, so it gets no gradient and cannot recover; lower the lr or re-initialise",
        ))
    g = record.grad_norm
    if math.isfinite(g) and g < VANISHING:
        hints.append(Hint("vanishing", f"vanishing gradients: ‖g‖ = {g:.2g} < {VANISHING:g}; the parameters barely move"))
    if previous is not None and math.isfinite(g) and previous.grad_norm > 0 and g > EXPLODING * previous.grad_norm:
        hints.append(Hint(
            "exploding",
            f"exploding gradients: ‖g‖ grew {g / previous.grad_norm:.3g}× in one step ({previous.grad_norm:.3g} → {g:.3g}); "
            "lower the lr or clip the gradient",
        ))
    if RisingLoss(RISING_STEPS).holds_for(losses):
        hints.append(Hint(
            "diverging",
            f"the loss rose {RISING_STEPS} steps in a row at lr={record.lr:g}: the steps overshoot; try a smaller lr",
        ))
    for name in record.params:
        ratio = record.update_ratio(name)
        if unchanged.get(name, 0) >= FROZEN_STEPS:
            hints.append(Hint(
                "frozen",
                f"{name} has not changed for {unchanged[name]} steps: its gradient is 0 (is it used, or is a unit dead?)",
                name,
            ))
        elif math.isfinite(ratio) and ratio > 0 and not RATIO_LOW <= ratio <= RATIO_HIGH:
            way = "large: the step overshoots the weights" if ratio > RATIO_HIGH else "tiny: learning is very slow"
            hints.append(Hint(
                "update_ratio",
                f"update ratio ‖Δ‖/‖p‖ of {name} is {ratio:.2g}, {way} (healthy is about 1e-3)",
                name,
            ))
    hints += untracked_hints(untracked)
    if skip_zero_grad:
        hints.append(Hint(
            "accumulating",
            f"zero_grad is skipped: each step adds its gradient to the last (‖g‖ now {g:.3g}); "
            "this is why the steps grow — turn zero_grad back on",
        ))
    return tuple(hints)
