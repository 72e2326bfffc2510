"""The state a scenario keeps in its own module, saved and restored with each snapshot.

The trained tensors, the model's buffers and the optimizer are what a step is
about, and :class:`gdtui.engine.snapshot.Snapshot` copies them directly. A
scenario ported from a real training loop keeps more: an LSTM's ``hidden``
carried from batch to batch, a second model and its optimizer (a GAN's
generator), BatchNorm modules called from a function ``model``, a counter.
:class:`ScenarioState` finds that state in the scenario's module namespace —
tensors, ``nn.Module``s (parameters, gradients, buffers, tensor attributes,
train/eval mode), optimizers, lr schedulers, ``torch.Generator``s, plain
numbers and strings, and lists, tuples and dicts of those — and
:class:`SavedState` holds a copy of it that can be put back, rebinding each
name to what it held.

Tensors are copied only when they changed: a tensor that is the same object,
holding the same bits, as in the previous snapshot shares that snapshot's copy
(a read, no new memory). The tensors of ``data`` (the scenario's input) and
frozen parameters (``requires_grad=False``, in no optimizer: a pretrained
backbone) are not copied at all; a rewind that finds one of them changed in
place says so. Whatever else the namespace holds (an instance of the
scenario's own class, an iterator, a numpy array) is named by
:meth:`ScenarioState.not_restored`, for the message of a replay that came out
different.
"""

from __future__ import annotations

import copy
import types
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from gdtui.engine.errors import a_type
from gdtui.engine.snapshot import _copy_state_dict, tensor_nbytes

#: Plain values a name may hold that are restored by rebinding the name.
_IMMUTABLE = (int, float, complex, bool, str, bytes, type(None), torch.device, torch.dtype)
#: Containers larger than this (elements, all levels) are not copied at each checkpoint.
MAX_ELEMENTS = 10_000
MAX_DEPTH = 6

try:
    from torch.optim.lr_scheduler import LRScheduler as _Scheduler
except ImportError:  # pragma: no cover - torch before 2.0
    from torch.optim.lr_scheduler import _LRScheduler as _Scheduler


def _kind(value: Any) -> str | None:
    """What kind of state ``value`` is, or None when a snapshot does not cover it."""
    if isinstance(value, torch.Tensor):
        return "tensor"
    if isinstance(value, _IMMUTABLE):
        return "plain"
    if isinstance(value, nn.Module):
        return "module"
    if isinstance(value, torch.optim.Optimizer):
        return "optimizer"
    if isinstance(value, (_Scheduler, torch.Generator)):
        return "stateful"
    if isinstance(value, (tuple, list, dict)):
        return "container"
    return None


@dataclass
class _SavedTensor:
    tensor: torch.Tensor
    version: int  # torch's count of its in-place changes: how a data tensor is watched
    data: torch.Tensor | None  # None: a data or frozen tensor, watched but not copied
    grad: torch.Tensor | None
    has_grad: bool


@dataclass
class SavedState:
    """The scenario's namespace state at one moment (see the module's docstring)."""

    bindings: dict[str, Any]
    names: frozenset[str] = frozenset()  # every name the namespace had
    containers: list[tuple[Any, Any]] = field(default_factory=list)  # (list or dict, its items then)
    attributes: list[tuple[Any, str, Any]] = field(default_factory=list)  # (object, name, value then)
    tensors: dict[int, _SavedTensor] = field(default_factory=dict)
    optimizers: list[tuple[torch.optim.Optimizer, dict[str, Any]]] = field(default_factory=list)
    stateful: list[tuple[Any, Any]] = field(default_factory=list)  # (scheduler or generator, its state)
    nbytes: int = 0


class ScenarioState:
    """Finds, copies and puts back the state of a scenario's namespace beyond what Snapshot covers.

    ``covered`` are the tensors the snapshot copies itself (trained tensors and the model's
    buffers), ``optimizer`` the one it saves; ``data`` is the scenario's input, whose tensors are
    watched rather than copied.
    """

    def __init__(self, namespace: dict[str, Any], covered: Iterable[torch.Tensor],
                 optimizer: torch.optim.Optimizer, data: Any = None):
        self.namespace = namespace
        self._covered = {id(t) for t in covered}
        self._optimizer = optimizer
        self._data_ids = {id(t) for t in _data_tensors(data)}
        self._full_nbytes = 0
        self._data_objects = {id(data), id(getattr(data, "dataset", None))} if data is not None else set()

    # --- capture --------------------------------------------------------------------------

    def capture(self, previous: SavedState | None = None) -> SavedState:
        """The state now; tensors unchanged since ``previous`` share its copies."""
        saved = SavedState(bindings={}, names=frozenset(self.namespace))
        walk = _Walk(self, saved, previous.tensors if previous is not None else {})
        walk.trained = {
            id(p) for v in self.namespace.values() if isinstance(v, torch.optim.Optimizer)
            for group in v.param_groups for p in group["params"]
        }
        with torch.no_grad():
            for name, value in list(self.namespace.items()):
                if name.startswith("__"):
                    continue
                kind = _kind(value)
                if kind is None:
                    continue
                if kind == "container":
                    if _unsupported(value):
                        continue  # named by not_restored; its binding is left as it is
                    walk.container(value)
                else:
                    walk.value(value, kind)
                saved.bindings[name] = value
        self._full_nbytes = walk.full_nbytes
        return saved

    def restore(self, saved: SavedState) -> None:
        """Put the namespace back as it was at ``saved``: names, containers, tensors and states."""
        ns = self.namespace
        made = ("tensor", "plain", "container")
        for name in [n for n in ns if n not in saved.names and not n.startswith("__") and _kind(ns[n]) in made]:
            del ns[name]  # made by a later step (a global set on first use)
        ns.update(saved.bindings)
        for container, items in saved.containers:
            if isinstance(container, list):
                container[:] = items
            else:
                container.clear()
                container.update(items)
        for obj, name, value in saved.attributes:
            setattr(obj, name, value)
        with torch.no_grad():
            for entry in saved.tensors.values():
                t = entry.tensor
                if entry.data is not None and t.shape == entry.data.shape and t.dtype == entry.data.dtype:
                    t.copy_(entry.data)
                elif entry.data is not None:  # resized or retyped in place since: its shape goes back too
                    t.set_(entry.data.clone())
                if entry.has_grad:
                    t.grad = None if entry.grad is None else entry.grad.clone()
        for opt, state in saved.optimizers:
            opt.load_state_dict(_copy_state_dict(state))
        for obj, state in saved.stateful:
            if isinstance(obj, torch.Generator):
                obj.set_state(state)
            else:
                obj.load_state_dict(copy.deepcopy(state))

    def nbytes_estimate(self) -> int:
        """About how many bytes a capture with nothing to share would copy: the last capture's."""
        return self._full_nbytes

    # --- what it cannot restore -----------------------------------------------------------

    def not_restored(self, saved: SavedState | None = None) -> list[str]:
        """What the namespace holds that a snapshot does not put back, as ``name (a Type)``; with
        ``saved``, also its data tensors that changed in place since then.

        Code (functions, classes, imported modules) and the data loader, whose position gdtui
        keeps itself, are left out."""
        found: list[str] = []
        for name, value in self.namespace.items():
            if name.startswith("__") or id(value) in self._data_objects:
                continue
            kind = _kind(value)
            if kind is None and not _is_code(value) and not isinstance(value, _DATA_TYPES):
                found.append(f"{name} ({a_type(value)})")
            elif kind == "container":
                why = _unsupported(value)
                if why:
                    found.append(f"{name} ({a_type(value)} holding {why})")
        if saved is not None:
            names = {id(v): n for n, v in self.namespace.items() if isinstance(v, torch.Tensor)}
            for entry in saved.tensors.values():
                if entry.data is None and entry.tensor._version != entry.version:
                    found.append(f"{names.get(id(entry.tensor), 'a data or frozen tensor')} (changed in place)")
        return found


_DATA_TYPES = (torch.utils.data.DataLoader, torch.utils.data.Dataset)


def _is_code(value: Any) -> bool:
    """Functions, classes and imported modules: no state that a step changes."""
    return isinstance(value, types.ModuleType) or (callable(value) and not isinstance(value, nn.Module))


def _unsupported(value: Any, depth: int = 0, count: list[int] | None = None) -> str | None:
    """Why a tuple, list or dict cannot be copied and put back, or None when it can."""
    count = [0] if count is None else count
    if depth > MAX_DEPTH:
        return "too deep a nesting"
    items = list(value.values()) if isinstance(value, dict) else list(value)
    count[0] += len(items)
    if count[0] > MAX_ELEMENTS:
        return f"over {MAX_ELEMENTS} elements"
    for item in items:
        kind = _kind(item)
        if kind is None:
            return a_type(item)
        if kind == "container":
            why = _unsupported(item, depth + 1, count)
            if why:
                return why
    return None


_SAME_WIDTH_INT = {1: torch.int8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def _same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether two tensors hold the same bits (-0.0 is not 0.0, a NaN equals itself).

    The version counter cannot tell: a kernel such as BatchNorm's updates its running
    statistics in place without counting it."""
    if a.shape != b.shape or a.dtype != b.dtype or a.device != b.device or a.layout != torch.strided or b.layout != torch.strided:
        return False
    if a.is_complex():
        a, b = torch.view_as_real(a), torch.view_as_real(b)
    if a.is_floating_point():
        ints = _SAME_WIDTH_INT[a.element_size()]
        a, b = a.contiguous().view(ints), b.detach().contiguous().view(ints)
    return torch.equal(a, b.detach())


def _data_tensors(data: Any) -> list[torch.Tensor]:
    """The tensors of the scenario's ``data``: a pair, a list of batches, or a loader's TensorDataset."""
    found: list[torch.Tensor] = []

    def visit(v: Any, depth: int) -> None:
        if isinstance(v, torch.Tensor):
            found.append(v)
        elif isinstance(v, (tuple, list)) and depth < 3 and len(v) <= MAX_ELEMENTS:
            for item in v:
                visit(item, depth + 1)

    visit(data, 0)
    dataset = getattr(data, "dataset", None)
    visit(getattr(dataset, "tensors", ()), 1)
    return found


class _Walk:
    """One capture's walk over the namespace's values."""

    def __init__(self, state: ScenarioState, saved: SavedState, previous: Mapping[int, _SavedTensor]):
        self.state = state
        self.saved = saved
        self.previous = previous
        self.seen: set[int] = set()
        self.full_nbytes = 0  # the bytes of every copy it holds, shared ones too
        self.trained: set[int] = set()  # the tensors of the namespace's optimizers

    def value(self, value: Any, kind: str) -> None:
        if id(value) in self.seen:
            return
        self.seen.add(id(value))
        if kind == "tensor":
            self.tensor(value)
        elif kind == "module":
            self.module(value)
        elif kind == "optimizer":
            if value is not self.state._optimizer:
                sd = _copy_state_dict(value.state_dict())
                self.saved.optimizers.append((value, sd))
                self.saved.nbytes += tensor_nbytes(sd["state"])
                self.full_nbytes += tensor_nbytes(sd["state"])
                for group in value.param_groups:
                    for p in group["params"]:
                        self.tensor(p)
        elif kind == "stateful":
            state = value.get_state() if isinstance(value, torch.Generator) else copy.deepcopy(value.state_dict())
            self.saved.stateful.append((value, state))

    def tensor(self, t: torch.Tensor) -> None:
        key = id(t)
        if key in self.state._covered or key in self.saved.tensors:
            return
        before = self.previous.get(key)
        frozen = isinstance(t, nn.Parameter) and not t.requires_grad and key not in self.trained
        if frozen or key in self.state._data_ids:
            data = None
        elif before is not None and before.tensor is t and before.data is not None and _same_bits(before.data, t):
            data = before.data  # unchanged since the previous snapshot: share its copy
        else:
            data = t.detach().clone()
            self.saved.nbytes += t.numel() * t.element_size()
        if data is not None:
            self.full_nbytes += t.numel() * t.element_size()
        has_grad = t.is_leaf and t.requires_grad
        grad = None
        if has_grad and t.grad is not None:
            grad = t.grad.detach().clone()
            self.saved.nbytes += grad.numel() * grad.element_size()
            self.full_nbytes += grad.numel() * grad.element_size()
        self.saved.tensors[key] = _SavedTensor(t, t._version, data, grad, has_grad)

    def module(self, module: nn.Module) -> None:
        for sub in module.modules():
            self.saved.attributes.append((sub, "training", sub.training))
            for name, value in vars(sub).items():
                if name.startswith("_") or name == "training":
                    continue
                kind = _kind(value)
                if kind == "tensor":
                    self.saved.attributes.append((sub, name, value))
                    self.tensor(value)
                elif kind == "container" and isinstance(value, tuple) and not _unsupported(value):
                    self.container(value)
                    self.saved.attributes.append((sub, name, value))
        for p in module.parameters():
            self.tensor(p)
        for b in module.buffers():
            self.tensor(b)

    def container(self, value: Any) -> None:
        """Note a tuple, list or dict that :func:`_unsupported` accepted, and what it holds."""
        if id(value) in self.seen:
            return
        self.seen.add(id(value))
        items = list(value.items()) if isinstance(value, dict) else list(value)
        for item in (v for _, v in items) if isinstance(value, dict) else items:
            kind = _kind(item)
            if kind == "container":
                self.container(item)
            else:
                self.value(item, kind)
        if isinstance(value, (list, dict)):
            self.saved.containers.append((value, dict(items) if isinstance(value, dict) else items))
