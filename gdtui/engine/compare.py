"""Manual mode against the optimizer: the update each would make at this step.

Manual mode is vanilla gradient descent, ``p -= lr * p.grad``. The scenario's
optimizer may do more: SGD with momentum remembers past steps, Adam scales
every element by its own history. :func:`compare_updates` computes both
updates from the same gradients, on copies, and says in plain words which term
of the optimizer's rule makes them differ.

Nothing of the session changes: both updates run on fresh copies of the
parameters (and of the optimizer state), in the parameters' own dtype, exactly
as a step of each mode would run them, and gradients that the step in progress
has not computed yet are computed on a snapshot that is then restored. The
difference reported is the one measured between the two results: even plain
SGD, the same rule as manual mode, may round the last float32 digit differently.
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass
from typing import Any

import torch

from gdtui.engine.errors import ScenarioError, error_from, one_line
from gdtui.engine.loop import StepError
from gdtui.engine.records import TensorView
from gdtui.engine.summarize import format_number, format_view, summarize

#: Param-group keys that choose an implementation, not the rule.
IMPLEMENTATION = ("params", "param_names", "foreach", "fused", "capturable", "differentiable")


@dataclass(frozen=True)
class TensorUpdate:
    """One tensor's change Δ (after minus before) in each mode, rounded to its dtype."""

    name: str
    manual: TensorView
    optim: TensorView
    max_difference: float


@dataclass(frozen=True)
class UpdateComparison:
    step: int  # the step whose update is compared (1-based)
    optimizer: str  # the optimizer's class name
    hyper: tuple[tuple[str, Any], ...]  # the first param group's hyper-parameters, lr as the next update uses it
    manual_lrs: tuple[float, ...]  # per param group
    optim_lrs: tuple[float, ...]
    tensors: tuple[TensorUpdate, ...]
    max_difference: float
    explanation: tuple[str, ...]
    notes: tuple[str, ...] = ()

    @property
    def same(self) -> bool:
        return self.max_difference == 0

    def lines(self) -> list[str]:
        """Short text for headless output."""
        hyper = ", ".join(f"{k}={_plain(v)}" for k, v in self.hyper)
        out = [
            f"update of step {self.step}: manual (p -= {format_number(self.manual_lrs[0])} × grad) "
            f"vs {self.optimizer}.step() ({hyper})"
        ]
        width = max((len(t.name) for t in self.tensors), default=0)
        for t in self.tensors:
            out.append(
                f"  {t.name:<{width}}  manual Δ {format_view(t.manual)}  optim Δ {format_view(t.optim)}  "
                f"max diff {format_number(t.max_difference, 3)}"
            )
        out.append(f"  largest difference: {format_number(self.max_difference, 3)}")
        out += [f"  {line}" for line in self.explanation]
        out += [f"  note: {n}" for n in self.notes]
        return out


def _plain(v: Any) -> str:
    if isinstance(v, float):
        return format_number(v)
    if isinstance(v, tuple):
        return "(" + ", ".join(_plain(x) for x in v) + ")"
    return str(v)


def _hyper_value(v: Any) -> Any:
    if isinstance(v, torch.Tensor) and v.numel() == 1:
        return float(v)
    if isinstance(v, (list, tuple)):
        return tuple(_hyper_value(x) for x in v)
    if isinstance(v, (bool, int, float, str)) or v is None:
        return v
    return one_line(repr(v), 40)


# --- the gradients of the step ----------------------------------------------------------


def _trial_grads(session: Any, step: int, zero_grad_mode: str | None = None) -> list[torch.Tensor | None]:
    """The gradients of ``step``, from a trial forward, loss and backward that is then undone."""
    try:
        with session.loop.trial(step, session.grad_source, zero_grad_mode):
            return session.loop.grad_copies()
    except StepError as exc:
        raise exc.at_step(step) from None


def _grads_from_live_graph(session: Any) -> list[torch.Tensor | None]:
    """The gradients the backward phase will give, without running it (the graph is kept)."""
    loop, sc = session.loop, session.loop.sc
    device = contextlib.nullcontext() if sc.device.type == "cpu" else torch.device(sc.device)
    try:
        with device:
            new = _new_grads(session)
    except Exception as exc:  # noqa: BLE001 - the user's code raised
        raise error_from(exc, sc.path, "comparing updates: computing the gradients") from None
    out = []
    for p, g in zip(loop.tensors, new):
        if g is None:
            out.append(None if p.grad is None else p.grad.detach().clone())
        else:
            out.append(g.detach().clone() if p.grad is None else p.grad.detach() + g.detach())
    return out


def _new_grads(session: Any) -> list[torch.Tensor | None]:
    """The gradients one backward of the step in progress adds (its loss computed if need be)."""
    loop, sc = session.loop, session.loop.sc
    if session.next_phase == "loss":
        loss = sc.objective() if sc.objective is not None else sc.loss_fn(loop.pred, loop.targets)
    else:
        loss = loop.loss
    if session.grad_source == "grad_fn":
        got = sc.grad_fn()
        given = [got[n] for n in loop.names] if isinstance(got, dict) else list(got)
        return [torch.as_tensor(g, dtype=p.dtype, device=p.device) for p, g in zip(loop.tensors, given)]
    return list(torch.autograd.grad(loss, loop.tensors, retain_graph=True, allow_unused=True))


def step_grads(session: Any) -> tuple[int, list[torch.Tensor | None], tuple[str, ...]]:
    """The step whose update comes next, and its gradients, leaving the session as it was."""
    loop = session.loop
    phase = session.next_phase
    n = session.step_count + 1
    if phase == "update":
        return n, loop.grad_copies(), ()
    rng = loop.capture_rng()
    try:
        if phase == "forward":
            return n, _trial_grads(session, n), ()
        if phase in ("loss", "backward"):
            return n, _grads_from_live_graph(session), ()
        # zero_grad: this step's update has run; compare the next one.
        grads = _trial_grads(session, n + 1, zero_grad_mode=session.mode)
        return n + 1, grads, (f"step {n}'s update has already run; this is step {n + 1}'s",)
    finally:
        rng.restore()


# --- the two updates --------------------------------------------------------------------


def _manual_after(groups: list[list[int]], before: list[torch.Tensor], grads: list[torch.Tensor | None],
                   lrs: list[float]) -> list[torch.Tensor]:
    """Manual mode's update, ``p -= lr * p.grad`` as Loop.update runs it, on copies: the parameters after it."""
    after = [b.clone() for b in before]
    with torch.no_grad():
        for idx, lr in zip(groups, lrs):
            for i in idx:
                if grads[i] is not None:
                    after[i] -= lr * grads[i]
    return after


def _optimizer_after(opt: torch.optim.Optimizer, groups: list[list[int]], before: list[torch.Tensor],
                     grads: list[torch.Tensor | None], lrs: list[float]) -> list[torch.Tensor]:
    """optimizer.step() on copies of the parameters and of the state, in their own dtype: the parameters after it."""
    params = [b.clone().requires_grad_(True) for b in before]
    for p, g in zip(params, grads):
        p.grad = None if g is None else g.clone()
    rebuilt = [
        {**{k: v for k, v in group.items() if k not in ("params", "param_names")}, "params": [params[i] for i in idx]}
        for group, idx in zip(opt.param_groups, groups)
    ]
    try:
        twin = type(opt)(rebuilt)
        twin.load_state_dict(copy.deepcopy(opt.state_dict()))
        for group, lr in zip(twin.param_groups, lrs):
            group["lr"] = lr
        twin.step()
    except Exception as exc:  # noqa: BLE001 - an optimizer gdtui cannot rebuild
        raise ScenarioError(
            f"comparing updates: cannot run {type(opt).__name__}.step() on copies ({type(exc).__name__}: {one_line(exc)})"
        ) from None
    return [p.detach() for p in params]


def compare_updates(session: Any) -> UpdateComparison:
    """The update manual mode and the optimizer would each make at this step, and their difference.

    Each update runs on copies in the parameters' own dtype, as the step would
    run it; Δ is after minus before, computed exactly in float64, and the
    difference is the largest |optim Δ − manual Δ| measured, so it is 0 only
    when the two updates give the same bits.
    """
    loop = session.loop
    opt = loop.optimizer
    step, grads, notes = step_grads(session)
    manual_lrs, optim_lrs = session.panel.lrs_for("manual"), session.panel.lrs_for("optim")
    with torch.no_grad():
        before = [t.detach().clone() for t in loop.tensors]
    manual_after = _manual_after(loop.groups, before, grads, manual_lrs)
    optim_after = _optimizer_after(opt, loop.groups, before, grads, optim_lrs)
    deltas_manual, deltas_optim, diffs = [], [], []
    with torch.no_grad():
        for b, m, o in zip(before, manual_after, optim_after):
            b64 = b.to(torch.float64)
            dm, do = m.to(torch.float64) - b64, o.to(torch.float64) - b64
            deltas_manual.append(dm)
            deltas_optim.append(do)
            diffs.append((do - dm).abs().amax() if b.numel() else torch.zeros((), dtype=torch.float64, device=b.device))
    views = summarize(deltas_manual + deltas_optim, session.max_values)
    n = len(loop.tensors)
    diff_values = torch.stack([d.to(diffs[0].device) for d in diffs]).tolist() if diffs else []  # one transfer
    tensors = tuple(
        TensorUpdate(name, views[i], views[n + i], diff_values[i]) for i, name in enumerate(loop.names)
    )
    group = opt.param_groups[0]
    hyper = [("lr", optim_lrs[0])] + [(k, _hyper_value(v)) for k, v in group.items() if k not in IMPLEMENTATION and k != "lr"]
    if len(opt.param_groups) > 1:
        notes += (f"{len(opt.param_groups)} param groups; the first group's hyper-parameters are shown",)
    first = all(not opt.state.get(p) for p in loop.tensors)
    max_diff = max(diff_values, default=0.0)
    return UpdateComparison(
        step=step,
        optimizer=type(opt).__name__,
        hyper=tuple(hyper),
        manual_lrs=tuple(manual_lrs),
        optim_lrs=tuple(optim_lrs),
        tensors=tensors,
        max_difference=max_diff,
        explanation=explain(opt, dict(hyper), first, manual_lrs, optim_lrs, max_diff),
        notes=notes,
    )


def explain(opt: torch.optim.Optimizer, hyper: dict[str, Any], first: bool,
            manual_lrs: list[float], optim_lrs: list[float], max_diff: float) -> tuple[str, ...]:
    """Which term of the optimizer's rule makes its step differ from p -= lr × grad, in words."""
    out: list[str] = []
    name = type(opt).__name__
    if manual_lrs != optim_lrs:
        out.append(
            f"the learning rates differ: manual mode uses {format_number(manual_lrs[0])} (the scenario's lr), "
            f"the optimizer {format_number(optim_lrs[0])}"
        )
    wd = hyper.get("weight_decay") or 0
    decoupled = isinstance(opt, torch.optim.AdamW) or bool(hyper.get("decoupled_weight_decay"))
    if hyper.get("maximize"):
        out.append("maximize=True: the optimizer climbs the gradient; manual mode descends it")
    if isinstance(opt, torch.optim.SGD):
        m, damp = hyper.get("momentum") or 0, hyper.get("dampening") or 0
        if wd:
            out.append(f"weight_decay={format_number(wd)}: adds {format_number(wd)} × p to the gradient (an L2 penalty)")
        if m and hyper.get("nesterov"):
            out.append(
                f"nesterov with momentum={format_number(m)}: the step uses grad + {format_number(m)} × the momentum "
                "buffer, a look ahead along the previous steps"
            )
        elif m:
            out.append(f"momentum={format_number(m)}: the step adds {format_number(m)} × the previous step (the momentum buffer)")
            if first:
                out.append("at the first step the buffer starts as the gradient itself, so this step equals plain SGD")
        if m and damp and not first:
            out.append(f"dampening={format_number(damp)}: the new gradient enters the buffer scaled by 1 − {format_number(damp)}")
        if not out and max_diff == 0:
            out.append("plain SGD: optimizer.step() is p -= lr × grad, exactly what manual mode does")
        elif not out:
            out.append(
                f"plain SGD: optimizer.step() is p -= lr × grad, the rule of manual mode, but its arithmetic rounds "
                f"the last digit differently (largest difference {format_number(max_diff, 3)})"
            )
    elif isinstance(opt, torch.optim.Adam):  # AdamW included
        b1, b2 = (hyper.get("betas") or (0.9, 0.999))[:2]
        out.append(
            f"{name} divides by √v̂ + eps (eps={format_number(hyper.get('eps', 1e-8))}): each element moves about lr "
            "whatever the gradient's size"
        )
        out.append(
            f"m̂ is a running mean of the gradients (β1={format_number(b1)}), v̂ of their squares (β2={format_number(b2)}), "
            "both corrected for starting at 0"
        )
        if hyper.get("amsgrad"):
            out.append("amsgrad: divides by the largest v̂ seen so far, so steps never grow back")
        if wd and decoupled:
            out.append(
                f"weight_decay={format_number(wd)}: {name} shrinks p directly by lr·wd·p "
                f"({format_number(optim_lrs[0] * wd)} × p), not through the gradient"
            )
        elif wd:
            out.append(f"weight_decay={format_number(wd)}: adds {format_number(wd)} × p to the gradient before the averages")
    elif isinstance(opt, torch.optim.RMSprop):
        out.append(
            f"RMSprop divides the gradient by √(running mean of grad²) + eps (alpha={format_number(hyper.get('alpha', 0.99))}): "
            "elements with large gradients take smaller steps"
        )
        if hyper.get("centered"):
            out.append("centered: the running mean of the gradient is subtracted first, dividing by an estimate of its variance")
        if hyper.get("momentum"):
            out.append(f"momentum={format_number(hyper['momentum'])}: the scaled steps are accumulated in a buffer")
        if wd:
            out.append(f"weight_decay={format_number(wd)}: adds {format_number(wd)} × p to the gradient")
    elif isinstance(opt, torch.optim.Adagrad):
        out.append("Adagrad divides by √(sum of all past grad²) + eps: each element's step shrinks as its gradients add up")
        if hyper.get("lr_decay"):
            out.append(f"lr_decay={format_number(hyper['lr_decay'])}: lr itself shrinks as lr / (1 + (t − 1) × lr_decay)")
        if wd:
            out.append(f"weight_decay={format_number(wd)}: adds {format_number(wd)} × p to the gradient")
    else:
        out.append(f"{name} has its own update rule and state; manual mode is vanilla SGD, p -= lr × grad")
    if max_diff == 0 and not any(s.startswith("plain SGD") for s in out):
        out.append("at this step the two updates are the same")
    return tuple(out)
