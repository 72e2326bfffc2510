"""What the optimizer remembers between steps, per trained tensor.

Plain SGD remembers nothing: each step uses only the current gradient. Other
optimizers keep *state* for every parameter: SGD with momentum a
``momentum_buffer`` (a running sum of past steps), Adam ``exp_avg`` (m, a
running mean of the gradients), ``exp_avg_sq`` (v, a running mean of their
squares) and a ``step`` count. :func:`optimizer_state` shows that state as
summaries, and for Adam the step each element took at the last update.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from gdtui.engine.records import TensorView, frozen_map
from gdtui.engine.summarize import format_number, format_view, scalars, summarize

#: What each well-known state entry means, for a learner.
MEANINGS = {
    "momentum_buffer": "running sum of past steps (velocity)",
    "exp_avg": "m: running mean of the gradients",
    "exp_avg_sq": "v: running mean of the squared gradients",
    "max_exp_avg_sq": "largest v so far (amsgrad)",
    "step": "updates made so far",
    "square_avg": "running mean of the squared gradients",
    "grad_avg": "running mean of the gradients (centered)",
    "sum": "sum of all past squared gradients",
}


@dataclass(frozen=True)
class TensorState:
    """One trained tensor's optimizer state: tensors as views, one-number entries as floats.

    ``adam_step`` is, for Adam and AdamW, lr·m̂/(√v̂ + eps) with the bias
    corrections m̂ = m/(1 − β1^t), v̂ = v/(1 − β2^t): the size of the step each
    element took at the last update (the parameter moved by minus this, and
    AdamW also shrank it by lr·wd·p). None otherwise, or before the first step.
    """

    name: str
    tensors: Mapping[str, TensorView]
    scalars: Mapping[str, float]
    adam_step: TensorView | None = None


@dataclass(frozen=True)
class OptimizerStateView:
    optimizer: str
    step: int  # finished session steps
    tensors: tuple[TensorState, ...]
    notes: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return all(not t.tensors and not t.scalars for t in self.tensors)

    def lines(self) -> list[str]:
        """Short text for headless output."""
        out = [f"{self.optimizer} state after step {self.step}"]
        for t in self.tensors:
            if not t.tensors and not t.scalars:
                out.append(f"  {t.name}: no state")
                continue
            out.append(f"  {t.name}:")
            for key, value in t.scalars.items():
                out.append(f"    {key} = {format_number(value)}" + _meaning(key))
            for key, view in t.tensors.items():
                out.append(f"    {key} = {format_view(view)}" + _meaning(key))
            if t.adam_step is not None:
                out.append(f"    last step size lr·m̂/(√v̂+eps) = {format_view(t.adam_step)}")
        out += [f"  note: {n}" for n in self.notes]
        return out


def _meaning(key: str) -> str:
    return f"  ({MEANINGS[key]})" if key in MEANINGS else ""


def _adam_step(state: dict[str, Any], group: dict[str, Any], lr: float, count: float) -> torch.Tensor | None:
    """lr·m̂/(√v̂ + eps), computed on the state's own device in float64."""
    m, v = state.get("exp_avg"), state.get("exp_avg_sq")
    if not isinstance(m, torch.Tensor) or not isinstance(v, torch.Tensor) or not count > 0:
        return None
    if group.get("amsgrad") and isinstance(state.get("max_exp_avg_sq"), torch.Tensor):
        v = state["max_exp_avg_sq"]
    beta1, beta2 = group.get("betas", (0.9, 0.999))[:2]
    beta1, beta2 = float(beta1), float(beta2)
    with torch.no_grad():
        m_hat = m.double() / (1 - beta1**count)
        v_hat = v.double() / (1 - beta2**count)
        return lr * m_hat / (v_hat.sqrt() + float(group.get("eps", 1e-8)))


def optimizer_state(session: Any) -> OptimizerStateView:
    """The optimizer's state for every trained tensor, named as the session names them.

    Tensors of more than the session's ``max_values`` elements are summarised
    on their own device; only the statistics reach the host.
    """
    loop = session.loop
    opt = loop.optimizer
    lrs = session.panel.lrs_for("optim")
    group_of = {i: g for g, idx in enumerate(loop.groups) for i in idx}
    is_adam = isinstance(opt, torch.optim.Adam)  # AdamW is one too
    # Gather every tensor entry, then summarise them all in one call (one host transfer per device).
    entries: list[tuple[int, str, torch.Tensor]] = []
    numbers: list[tuple[int, str, Any]] = []
    for i, p in enumerate(loop.tensors):
        state = opt.state.get(p) or {}
        for key, value in state.items():
            if isinstance(value, torch.Tensor) and value.numel() == 1 and (key == "step" or value.shape != p.shape):
                numbers.append((i, key, value))  # a count or a per-tensor number, not one per element
            elif isinstance(value, torch.Tensor):
                entries.append((i, key, value))
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                numbers.append((i, key, value))
    values = scalars([v for _, _, v in numbers])
    per_scalars: list[dict[str, float]] = [{} for _ in loop.tensors]
    for (i, key, _), x in zip(numbers, values):
        per_scalars[i][key] = x
    adam: dict[int, torch.Tensor] = {}
    if is_adam:
        for i, p in enumerate(loop.tensors):
            g = group_of[i]
            step = _adam_step(opt.state.get(p) or {}, opt.param_groups[g], lrs[g], per_scalars[i].get("step", 0.0))
            if step is not None:
                adam[i] = step
    adam_order = sorted(adam)
    views = summarize([t for _, _, t in entries] + [adam[i] for i in adam_order], session.max_values)
    per_tensors: list[dict[str, TensorView]] = [{} for _ in loop.tensors]
    for (i, key, _), view in zip(entries, views):
        per_tensors[i][key] = view
    adam_views = dict(zip(adam_order, views[len(entries):]))
    tensors = tuple(
        TensorState(name, frozen_map(per_tensors[i]), frozen_map(per_scalars[i]), adam_views.get(i))
        for i, name in enumerate(loop.names)
    )
    notes = []
    if all(not opt.state.get(p) for p in loop.tensors):
        if isinstance(opt, torch.optim.SGD) and not any(g.get("momentum") for g in opt.param_groups):
            notes.append("plain SGD keeps no state: each step uses only the current gradient")
        else:
            notes.append(f"no state yet: {type(opt).__name__} fills it at its first step")
    if session.mode == "manual" and not all(not opt.state.get(p) for p in loop.tensors):
        notes.append("manual mode neither uses nor updates this state")
    return OptimizerStateView(type(opt).__name__, session.step_count, tensors, tuple(notes))
