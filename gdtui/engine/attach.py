"""Attaching to an unmodified training script: run it as ``__main__`` with torch's global hooks.

:func:`run_script` runs a file the way ``python SCRIPT ARGS`` does (``runpy.run_path`` as
``__main__``, ``sys.argv`` set, the script's folder first on ``sys.path``), or a module the
way ``python -m`` does, with :class:`Hooks` installed. The hooks tell a :class:`Listener`:

* ``paused(step)``: step N's pause point, before its update, with its gradients ready. Step N
  is the N-th call of any optimizer's ``step()``, counted across optimizers (a GradScaler step
  it skips for inf/NaN counts too, marked skipped). With a closure (LBFGS) the pause is in the
  closure's first call, once it returned. A script that updates by hand (``w -= lr * w.grad``)
  steps no optimizer: there a step is the span from one ``backward()`` to the next, and the
  pause is after backward.
* ``updated(step)``: the update of step N is done (``skipped`` for a GradScaler skip).

The listener may raise KeyboardInterrupt from ``paused`` to stop the script there, as Ctrl-C
would: its ``finally`` blocks and ``atexit`` handlers run. Nothing in the file is edited; the
hooks are removed when it returns.
"""

from __future__ import annotations

import math
import os
import runpy
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn
from torch.nn.modules import module as module_hooks
from torch.optim import optimizer as optimizer_hooks

from gdtui.engine.nonfinite import nonfinite, output_tensors

#: Module outputs kept from one forward to its backward, to name where a NaN appeared first
#: (a forward run with gradients on but no backward, like an evaluation without no_grad, stops there).
MAX_WATCHED = 4096


@dataclass
class ScriptStep:
    """One step of the script, as the hooks saw it (live tensors: engine-internal, never a record).

    ``tensors``: the trained tensors, (name, tensor) in the optimizer's order. ``before``:
    copies of them at the pause, for the update. ``grads``: for a hand step, copies of the
    gradients at the pause (the script zeroes them before the step is over).
    """

    step: int
    kind: str  # "optimizer" or "hand"
    loss: float
    backwards: int  # backward calls whose losses make ``loss`` (0: none seen, the loss is NaN)
    optimizer: torch.optim.Optimizer | None = None
    index: int | None = None  # the optimizer's index, in the order they first stepped
    tensors: list[tuple[str, torch.Tensor]] = field(default_factory=list)
    before: list[torch.Tensor | None] = field(default_factory=list)
    grads: list[torch.Tensor | None] | None = None
    clip: tuple[float, float] | None = None  # (norm before clipping, max_norm)
    skipped: bool = False
    scale: float | None = None
    #: The first module whose output went NaN/Inf in this step's forward, by its full name.
    origin: str | None = None
    #: The script's line that called step() (or backward(), for a hand step): (file, line).
    where: tuple[str, int] | None = None
    #: A hand step: its tensors' version counters at the pause (an in-place update bumps them).
    versions: list[int] | None = None
    #: step() was given a closure (LBFGS): its forward and backward run inside the step.
    closure: bool = False
    #: What the root module was last called with before the pause: (args, kwargs).
    batch: tuple[tuple[Any, ...], dict[str, Any]] | None = None


class Listener(Protocol):
    def first_step(self, step: ScriptStep) -> None:
        """``step.optimizer`` steps for the first time (before paused: its tensors are as before the update)."""

    def paused(self, step: ScriptStep) -> None: ...

    def updated(self, step: ScriptStep) -> None: ...


def _floats(value: Any) -> float:
    try:
        return float(value.detach()) if isinstance(value, torch.Tensor) else float(value)
    except (TypeError, ValueError, RuntimeError):
        return math.nan


def _leaves(tensor: torch.Tensor) -> list[torch.Tensor]:
    """The leaf tensors backward from ``tensor`` reaches (its AccumulateGrad nodes)."""
    found: list[torch.Tensor] = []
    seen: set[int] = set()
    stack = [tensor.grad_fn]
    while stack:
        fn = stack.pop()
        if fn is None or id(fn) in seen:
            continue
        seen.add(id(fn))
        variable = getattr(fn, "variable", None)
        if variable is not None:
            found.append(variable)
            continue
        stack.extend(f for f, _ in fn.next_functions)
    return found


def _script_line(files: set[str]) -> tuple[str, int] | None:
    """The innermost frame of the running script's own file(s)."""
    frame = sys._getframe(2)
    while frame is not None:
        if frame.f_code.co_filename in files:
            return frame.f_code.co_filename, frame.f_lineno
        frame = frame.f_back
    return None


class Hooks:
    """torch's global hooks while a script runs, reporting its steps to ``listener``."""

    def __init__(self, listener: Listener, files: Sequence[str] = (), *, updates: bool = True):
        self.listener = listener
        #: Copy the trained tensors at each pause, so that a record has the update (after minus before).
        self.updates = updates
        self.files = {os.path.abspath(f) for f in files}
        self.steps = 0
        self.optimizers: list[torch.optim.Optimizer] = []
        self.backwards = 0  # backward() calls seen
        self.hand = False  # a hand-update script: steps are spans between backward() calls
        self._loss = 0.0  # the sum of the losses backward ran on since the last step
        self._losses = 0
        self._clip: tuple[float, float] | None = None
        self._current: ScriptStep | None = None  # between its pause and its update
        self._in_backward = False
        self._scaled: tuple[torch.Tensor, torch.Tensor] | None = None  # (scaled loss, loss)
        self._roots: list[nn.Module] = []
        self._root_ids: set[int] = set()
        self._depth = 0
        self._outputs: list[tuple[nn.Module, Any]] = []
        #: The root module's last call: (args, kwargs), for the batch a step was fed.
        self.root_call: tuple[tuple[Any, ...], dict[str, Any]] | None = None
        self._origin: str | None = None
        self._names: dict[int, dict[int, str]] = {}  # optimizer id -> param id -> name
        self._candidate: tuple[float, list[torch.Tensor], list[int], list[torch.Tensor], list[torch.Tensor | None], Any] | None = None
        self._undo: list[Callable[[], None]] = []

    # --- install and remove -------------------------------------------------------------

    @contextmanager
    def installed(self) -> Iterator[Hooks]:
        handles = [
            optimizer_hooks.register_optimizer_step_pre_hook(self._pre_step),
            optimizer_hooks.register_optimizer_step_post_hook(self._post_step),
            module_hooks.register_module_forward_pre_hook(self._forward_pre),
            module_hooks.register_module_forward_hook(self._forward, with_kwargs=True, always_call=True),
        ]
        self._patch(torch.Tensor, "backward", self._wrap_backward(torch.Tensor.backward, method=True))
        self._patch(torch.autograd, "backward", self._wrap_backward(torch.autograd.backward, method=False))
        clip = self._wrap_clip(torch.nn.utils.clip_grad_norm_)
        self._patch(torch.nn.utils, "clip_grad_norm_", clip)
        self._patch(torch.nn.utils.clip_grad, "clip_grad_norm_", clip)
        scaler = torch.amp.GradScaler
        self._patch(scaler, "step", self._wrap_scaler_step(scaler.step))
        self._patch(scaler, "scale", self._wrap_scale(scaler.scale))
        try:
            yield self
        finally:
            for handle in handles:
                handle.remove()
            for undo in reversed(self._undo):
                undo()
            self._undo.clear()

    def _patch(self, owner: Any, name: str, value: Any) -> None:
        old = owner.__dict__[name] if name in getattr(owner, "__dict__", {}) else getattr(owner, name)
        setattr(owner, name, value)
        self._undo.append(lambda: setattr(owner, name, old))

    # --- the script ends ----------------------------------------------------------------

    def finish(self) -> None:
        """The script returned or stopped: a hand step in progress ends here, if its tensors moved."""
        self._outputs.clear()
        if self.hand and self._current is not None:
            step, self._current = self._current, None
            if any(t._version != v for (_, t), v in zip(step.tensors, step.versions or ())):
                self.listener.updated(step)
        self._candidate = None

    # --- names --------------------------------------------------------------------------

    def _script_globals(self) -> dict[str, Any]:
        main = sys.modules.get("__main__")
        return vars(main) if main is not None else {}

    def _name_map(self) -> dict[int, str]:
        """Every tensor's name: its full module name in the root module that owns it (prefixed
        by the root's variable name when several roots own trained tensors), else the script's
        global variable that holds it."""
        names: dict[int, str] = {}
        glob = self._script_globals()
        for key, value in glob.items():
            if isinstance(value, torch.Tensor) and not key.startswith("__"):
                names.setdefault(id(value), key)
        owners = [r for r in self._roots if any(True for _ in r.parameters())]
        var = {id(v): k for k, v in glob.items() if isinstance(v, nn.Module)}
        for i, root in enumerate(owners):
            prefix = ""
            if len(owners) > 1:
                prefix = var.get(id(root), f"{type(root).__name__.lower()}{i}") + "."
            for name, p in root.named_parameters():
                names[id(p)] = prefix + name
        return names

    def _names_for(self, opt: torch.optim.Optimizer) -> list[tuple[str, torch.Tensor]]:
        params = [p for g in opt.param_groups for p in g["params"]]
        known = self._names.get(id(opt))
        if known is None or any(id(p) not in known for p in params):
            found = self._name_map()
            known = {}
            used: set[str] = set()
            for g, group in enumerate(opt.param_groups):
                for i, p in enumerate(group["params"]):
                    name = found.get(id(p), f"param_groups[{g}][{i}]")
                    while name in used:
                        name += "'"
                    used.add(name)
                    known[id(p)] = name
            if not any(name.startswith("param_groups[") for name in known.values()):
                self._names[id(opt)] = known  # kept once every tensor has its name (a closure's forward comes later)
        return [(known[id(p)], p) for p in params]

    @property
    def roots(self) -> list[nn.Module]:
        """The modules the script called at the top level (its models), in the order first called."""
        return list(self._roots)

    @property
    def current(self) -> ScriptStep | None:
        """The step between its pause and its update, if any."""
        return self._current

    def module_name(self, module: nn.Module) -> str:
        """``module``'s full name in the root module that holds it, else its class name."""
        return self._module_name(module)

    def _module_name(self, module: nn.Module) -> str:
        for root in self._roots:
            for name, m in root.named_modules():
                if m is module:
                    return name or type(root).__name__
        return type(module).__name__

    # --- forward: roots, and where a NaN first appears ------------------------------------

    def _forward_pre(self, module: nn.Module, args: Any) -> None:
        if self._depth == 0 and id(module) not in self._root_ids:
            self._root_ids.add(id(module))
            self._roots.append(module)
        self._depth += 1

    def _forward(self, module: nn.Module, args: Any, kwargs: dict[str, Any], output: Any) -> None:
        self._depth = max(0, self._depth - 1)
        if self._depth == 0 and torch.is_grad_enabled():  # a root returned: a training forward's batch
            self.root_call = (args, kwargs)
        if torch.is_grad_enabled() and len(self._outputs) < MAX_WATCHED:
            self._outputs.append((module, output))

    def _find_origin(self) -> str | None:
        """The first module whose output went NaN/Inf in the forward since the last backward."""
        for module, output in self._outputs:
            for t in output_tensors(output):
                if nonfinite(t):
                    return f"{self._module_name(module)} ({type(module).__name__})"
        return None

    # --- backward: the loss, and the steps of a hand-update script -------------------------

    def _wrap_backward(self, original: Callable[..., Any], method: bool) -> Callable[..., Any]:
        hooks = self

        def backward(*args: Any, **kwargs: Any) -> Any:
            if hooks._in_backward:
                return original(*args, **kwargs)
            tensors = args[0] if args else kwargs.get("tensors", kwargs.get("self"))
            tensor = tensors if isinstance(tensors, torch.Tensor) else (tensors[0] if tensors else None)
            hooks._before_backward(tensor)
            hooks._in_backward = True
            try:
                result = original(*args, **kwargs)
            finally:
                hooks._in_backward = False
            hooks._after_backward(tensor)
            return result

        return backward

    def _loss_of(self, tensor: torch.Tensor | None) -> float:
        if tensor is None or tensor.numel() != 1:
            return math.nan
        if self._scaled is not None and tensor is self._scaled[0]:
            return _floats(self._scaled[1])  # the loss before GradScaler scaled it
        return _floats(tensor)

    def _before_backward(self, tensor: torch.Tensor | None) -> None:
        self.backwards += 1
        value = self._loss_of(tensor)
        origin = self._find_origin() if not math.isfinite(value) else None
        self._outputs.clear()
        if not self.optimizers:
            self._hand_before_backward()  # may end the last step: this backward is the next one's
        self._loss += value
        self._losses += 1
        self._origin = self._origin or origin

    def _hand_before_backward(self) -> None:
        # No optimizer has stepped: is this a hand-update script? Its tensors moved since the last backward.
        if self.hand:
            if self._current is not None:
                step, self._current = self._current, None
                self.listener.updated(step)
            return
        if self._candidate is not None:
            loss, leaves, versions, before, grads, where = self._candidate
            if any(t._version != v for t, v in zip(leaves, versions)):
                self.hand = True
                step = self._hand_step(loss, leaves, before, grads, where)
                self.listener.paused(step)  # late: the update already ran
                self.listener.updated(step)
            self._candidate = None

    def _after_backward(self, tensor: torch.Tensor | None) -> None:
        if self.optimizers or tensor is None:
            return
        leaves = [t for t in _leaves(tensor) if t.requires_grad]
        if not leaves:
            return
        loss = self._loss
        versions = [t._version for t in leaves]
        where = _script_line(self.files)
        if self.hand:
            step = self._hand_step(loss, leaves, None, None, where)
            self._current = step
            self.listener.paused(step)
            return
        with torch.no_grad():
            before = [t.detach().clone() for t in leaves]
            grads = [None if t.grad is None else t.grad.detach().clone() for t in leaves]
        self._candidate = (loss, leaves, versions, before, grads, where)

    def _hand_step(self, loss: float, leaves: list[torch.Tensor], before: list[torch.Tensor] | None,
                   grads: list[torch.Tensor | None] | None, where: Any) -> ScriptStep:
        self.steps += 1
        names = self._name_map()
        used: set[str] = set()
        tensors = []
        for i, t in enumerate(leaves):
            name = names.get(id(t), f"leaf{i}")
            while name in used:
                name += "'"
            used.add(name)
            tensors.append((name, t))
        order = sorted(range(len(tensors)), key=lambda i: tensors[i][0])
        tensors = [tensors[i] for i in order]
        with torch.no_grad():
            if before is None:
                before = [t.detach().clone() for _, t in tensors]
                grads = [None if t.grad is None else t.grad.detach().clone() for _, t in tensors]
            else:
                before = [before[i] for i in order]
                grads = [grads[i] for i in order] if grads is not None else None
        step = ScriptStep(self.steps, "hand", loss, self._losses, tensors=tensors, before=list(before),
                          grads=grads, origin=self._origin, where=where, versions=[t._version for _, t in tensors],
                          batch=self.root_call)
        self._reset()
        return step

    def _reset(self) -> None:
        self._loss, self._losses, self._clip, self._origin = 0.0, 0, None, None

    # --- clip_grad_norm_, GradScaler ------------------------------------------------------

    def _wrap_clip(self, original: Callable[..., Any]) -> Callable[..., Any]:
        hooks = self

        def clip_grad_norm_(parameters: Any, max_norm: float, *args: Any, **kwargs: Any) -> Any:
            total = original(parameters, max_norm, *args, **kwargs)
            hooks._clip = (_floats(total), float(max_norm))
            return total

        clip_grad_norm_.__doc__ = original.__doc__
        return clip_grad_norm_

    def _wrap_scale(self, original: Callable[..., Any]) -> Callable[..., Any]:
        hooks = self

        def scale(scaler: Any, outputs: Any) -> Any:
            scaled = original(scaler, outputs)
            if isinstance(outputs, torch.Tensor) and isinstance(scaled, torch.Tensor):
                hooks._scaled = (scaled, outputs)
            return scaled

        return scale

    def _wrap_scaler_step(self, original: Callable[..., Any]) -> Callable[..., Any]:
        hooks = self

        def step(scaler: Any, optimizer: torch.optim.Optimizer, *args: Any, **kwargs: Any) -> Any:
            before = hooks.steps
            result = original(scaler, optimizer, *args, **kwargs)
            if hooks.steps == before and scaler.is_enabled():  # the scaler skipped it: inf/NaN gradients
                hooks._skipped(optimizer, _floats(scaler.get_scale()))
            return result

        return step

    def _skipped(self, opt: torch.optim.Optimizer, scale: float) -> None:
        step = self._begin(opt)
        self._snapshot(step)
        step.skipped, step.scale = True, scale
        step.origin = None  # a scaler's inf is not the run going NaN
        self.listener.paused(step)
        self._current = None
        self.listener.updated(step)

    # --- optimizer steps ------------------------------------------------------------------

    def _begin(self, opt: torch.optim.Optimizer) -> ScriptStep:
        first = not any(o is opt for o in self.optimizers)
        if first:
            self.optimizers.append(opt)
            self._candidate = None
        index = next(i for i, o in enumerate(self.optimizers) if o is opt)
        self.steps += 1
        tensors = self._names_for(opt)
        step = ScriptStep(self.steps, "optimizer", self._loss if self._losses else math.nan, self._losses,
                          optimizer=opt, index=index, tensors=tensors, clip=self._clip, origin=self._origin,
                          where=_script_line(self.files), batch=self.root_call)
        self._reset()
        if first:
            self.listener.first_step(step)
        return step

    def _snapshot(self, step: ScriptStep) -> None:
        if not self.updates:
            return
        with torch.no_grad():
            step.before = [p.detach().clone() for _, p in step.tensors]

    def _pre_step(self, opt: torch.optim.Optimizer, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        step = self._begin(opt)
        self._current = step
        # args are step()'s own, the optimizer first: step(self, closure=None)
        closure = kwargs.get("closure", args[1] if len(args) > 1 else None)
        step.closure = closure is not None
        if closure is None:
            self._snapshot(step)
            self.listener.paused(step)
            return None
        hooks, calls = self, [0]

        def first_call_pauses() -> Any:
            calls[0] += 1
            value = closure()
            if calls[0] == 1:  # the loss and gradients of the closure's first call
                step.loss, step.backwards = _floats(value), max(1, hooks._losses)
                step.clip = step.clip or hooks._clip
                step.origin = step.origin or hooks._origin
                step.batch = hooks.root_call
                hooks._reset()
                step.tensors = hooks._names_for(step.optimizer)  # its forward ran in the closure: the names are known now
                hooks._snapshot(step)
                hooks.listener.paused(step)
            return value

        if "closure" in kwargs:
            return args, {**kwargs, "closure": first_call_pauses}
        return (args[0], first_call_pauses, *args[2:]), kwargs

    def _post_step(self, opt: torch.optim.Optimizer, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        step, self._current = self._current, None
        self._reset()  # the closure's later calls are not the next step's loss
        if step is not None:
            self.listener.updated(step)


@contextmanager
def script_argv(argv0: str, args: Sequence[str], path_first: str | None) -> Iterator[None]:
    """``sys.argv`` and ``sys.path[0]`` as ``python`` sets them, restored after."""
    saved_argv, saved_path = sys.argv, list(sys.path)
    sys.argv = [argv0, *args]
    if path_first is not None:
        sys.path.insert(0, path_first)
    try:
        yield
    finally:
        sys.argv = saved_argv
        sys.path[:] = saved_path


def run_script(target: str, args: Sequence[str], hooks: Hooks, *, module: bool = False) -> dict[str, Any]:
    """Run ``target`` (a file, or with ``module`` a module name) as ``__main__`` with ``hooks``
    installed; return its globals. The script's exceptions propagate, KeyboardInterrupt included."""
    if module:
        spec_file = None
        with script_argv(target, args, os.getcwd()), hooks.installed():
            import importlib.util

            spec = importlib.util.find_spec(target)
            spec_file = spec.origin if spec is not None else None
            if spec_file:
                hooks.files.add(os.path.abspath(spec_file))
            try:
                return runpy.run_module(target, run_name="__main__", alter_sys=True)
            finally:
                hooks.finish()
    path = os.path.abspath(target)
    hooks.files.add(path)
    with script_argv(target, args, str(Path(path).parent)), hooks.installed():
        try:
            return runpy.run_path(path, run_name="__main__")
        finally:
            hooks.finish()
