"""The state an attached script's rewind restores (gdtui.engine.script_source.ScriptSource).

A script's own Python variables and its DataLoader position cannot go back; what can is taken at
each pause, while the script is parked, by :func:`take`: the trained tensors and their gradients,
the root modules' buffers, every optimizer's state and param groups, the lr schedulers' and
GradScalers' state dicts, and every RNG. :func:`restore` puts it back in place (the script keeps
its references to the same tensors and objects). :func:`tracking` notes the schedulers and
GradScalers the script builds, which no hook of torch's reports.
"""

from __future__ import annotations

import copy
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

from gdtui.engine.attach import Hooks
from gdtui.engine.snapshot import RngState, tensor_nbytes


@dataclass
class ScriptSnapshot:
    """The state rewind restores, taken while the script is parked (engine-internal: live copies)."""

    tensors: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]  # (tensor, value, grad)
    buffers: list[tuple[torch.Tensor, torch.Tensor]]
    optimizers: list[tuple[Any, dict[Any, dict[str, Any]], list[dict[str, Any]]]]
    schedulers: list[tuple[Any, dict[str, Any]]]
    scalers: list[tuple[Any, dict[str, Any]]]
    rng: RngState
    nbytes: int = 0


def _clone(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    return copy.deepcopy(value)


@dataclass
class Tracked:
    """Schedulers and GradScalers the script creates while attached (weakly held)."""

    schedulers: list[weakref.ref] = field(default_factory=list)
    scalers: list[weakref.ref] = field(default_factory=list)

    def live(self, refs: list[weakref.ref]) -> list[Any]:
        return [o for o in (r() for r in refs) if o is not None]


@contextmanager
def tracking(tracked: Tracked) -> Iterator[None]:
    """Note every lr scheduler and GradScaler built while the script runs (none is edited)."""
    from torch.optim import lr_scheduler

    patched: list[tuple[type, Any]] = []

    def wrap(cls: type, into: list[weakref.ref]) -> None:
        original = cls.__dict__["__init__"]

        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
            original(self, *args, **kwargs)
            if not any(r() is self for r in into):
                into.append(weakref.ref(self))

        __init__.__doc__ = original.__doc__
        cls.__init__ = __init__  # type: ignore[misc]
        patched.append((cls, original))

    bases = [lr_scheduler.LRScheduler]
    plateau = getattr(lr_scheduler, "ReduceLROnPlateau", None)
    if plateau is not None and not issubclass(plateau, lr_scheduler.LRScheduler):
        bases.append(plateau)
    for cls in bases:
        wrap(cls, tracked.schedulers)
    wrap(torch.amp.GradScaler, tracked.scalers)
    try:
        yield
    finally:
        for cls, original in reversed(patched):
            cls.__init__ = original  # type: ignore[misc]


def take(hooks: Hooks, tracked: Tracked) -> ScriptSnapshot:
    """The state of the parked script that rewind can put back."""
    seen: set[int] = set()
    tensors: list[torch.Tensor] = []
    for opt in hooks.optimizers:
        for group in opt.param_groups:
            for p in group["params"]:
                if id(p) not in seen:
                    seen.add(id(p))
                    tensors.append(p)
    if hooks.hand and hooks.current is not None:
        tensors += [t for _, t in hooks.current.tensors if id(t) not in seen]
    buffers: list[torch.Tensor] = []
    for root in hooks.roots:
        for b in root.buffers():
            if id(b) not in seen:
                seen.add(id(b))
                buffers.append(b)
    with torch.no_grad():
        snap = ScriptSnapshot(
            tensors=[(t, t.detach().clone(), None if t.grad is None else t.grad.detach().clone()) for t in tensors],
            buffers=[(b, b.detach().clone()) for b in buffers],
            optimizers=[(opt, {p: {k: _clone(v) for k, v in s.items()} for p, s in opt.state.items()},
                         [{k: _clone(v) for k, v in g.items() if k != "params"} for g in opt.param_groups])
                        for opt in hooks.optimizers],
            schedulers=[(s, copy.deepcopy(s.state_dict())) for s in tracked.live(tracked.schedulers)],
            scalers=[(s, copy.deepcopy(s.state_dict())) for s in tracked.live(tracked.scalers)],
            rng=RngState.capture(),
        )
    snap.nbytes = (sum(tensor_nbytes(v) + tensor_nbytes(g) for _, v, g in snap.tensors)
                   + sum(tensor_nbytes(v) for _, v in snap.buffers)
                   + sum(tensor_nbytes(list(state.values())) for _, state, _ in snap.optimizers))
    return snap


def restore(snap: ScriptSnapshot) -> None:
    """Put the state ``snap`` holds back into the script's own tensors and objects (``snap`` stays
    as it was, so it can be restored again)."""
    with torch.no_grad():
        for t, value, grad in snap.tensors:
            t.copy_(value)
            if grad is None:
                t.grad = None
            elif t.grad is not None and t.grad.shape == grad.shape:
                t.grad.copy_(grad)
            else:
                t.grad = grad.clone()
        for b, value in snap.buffers:
            b.copy_(value)
        for opt, state, groups in snap.optimizers:
            for p in [p for p in opt.state if p not in state]:
                del opt.state[p]
            for p, saved in state.items():
                live = opt.state.get(p)
                if live is None or set(live) != set(saved):
                    opt.state[p] = {k: _clone(v) for k, v in saved.items()}
                    continue
                for k, v in saved.items():
                    cur = live[k]
                    if isinstance(v, torch.Tensor) and isinstance(cur, torch.Tensor) and cur.shape == v.shape:
                        cur.copy_(v)
                    else:
                        live[k] = _clone(v)
            for group, saved_group in zip(opt.param_groups, groups):
                group.update({k: _clone(v) for k, v in saved_group.items()})
    for sched, state in snap.schedulers:
        sched.load_state_dict(copy.deepcopy(state))
    for scaler, state in snap.scalers:
        if state:
            scaler.load_state_dict(copy.deepcopy(state))
    snap.rng.restore()
