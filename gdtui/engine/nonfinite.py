"""Where a NaN or an Inf began: watch one step's forward, loss and backward run again.

A step's record names the first tensor it finds non-finite (``loss``, a parameter, ``grad of
NAME``); that is where the NaN/Inf ended up, not where it began. :class:`OriginProbe` is put
on the scenario's objects only while the rewinder runs that step again from a checkpoint
(gdtui.engine.rewind.Rewinder.explain), so a normal step pays nothing for it. It notes, in
the order they happen:

* forward: the first module of the model (by its full name, ``body.3 (Divide)``) whose
  output holds a NaN or an Inf; for a model made of plain functions, and for the loss
  function, the first torch call whose result does, with its line in the scenario file;
* backward: the first tensor whose gradient does. Backward runs from the loss towards
  the inputs, so that is the one nearest the loss: a module's output, a torch call's
  result, or a trained tensor.

What the forward found comes first; the backward's is the origin only when the forward
stayed finite (an overflowing gradient). Hooks only read: no number changes.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode


def output_tensors(value: Any, depth: int = 0) -> Iterator[torch.Tensor]:
    """The tensors of a module's output: a tensor, a tuple/list/dict of them, or an object with
    tensor attributes (an HF-style output), a few levels down."""
    if isinstance(value, torch.Tensor):
        yield value
    elif depth < 4:
        if isinstance(value, (tuple, list)):
            items = value
        elif isinstance(value, dict):
            items = value.values()
        elif hasattr(value, "__dict__") and not isinstance(value, nn.Module):
            items = vars(value).values()
        else:
            return
        for item in items:
            yield from output_tensors(item, depth + 1)


def nonfinite(t: torch.Tensor) -> bool:
    """Whether a float or complex tensor holds a NaN or an Inf (others never do)."""
    if not (t.is_floating_point() or t.is_complex()) or t.is_meta or t.layout != torch.strided:
        return False
    return not bool(torch.isfinite(t.detach()).all())


#: The operators a torch call may come from, by the name of the Tensor method behind them.
_OPERATORS = {
    f"__{r}{name}__": symbol
    for name, symbol in (("add", "+"), ("sub", "-"), ("mul", "*"), ("truediv", "/"), ("div", "/"), ("floordiv", "//"),
                         ("mod", "%"), ("pow", "**"), ("matmul", "@"))
    for r in ("", "r", "i")
}


def _call_name(func: Any) -> str:
    """How a torch call is named in a message: ``torch.log``, ``Tensor.sqrt``, or its operator (``/``)."""
    name = getattr(func, "__name__", None) or repr(func)
    if name in _OPERATORS:
        return _OPERATORS[name]
    owner = getattr(func, "__objclass__", None) or getattr(func, "__self__", None)
    if owner is torch._C.TensorBase or owner is torch.Tensor:
        return f"Tensor.{name}"
    module = getattr(func, "__module__", None) or ""
    return f"torch.{name}" if module.startswith("torch") and not module.startswith("torch._C._TensorBase") else name


class OriginProbe(TorchFunctionMode):
    """Watches one step run again for the first tensor that went NaN/Inf (see the module's doc).

    Use as a context around the step's forward, loss and backward; read :attr:`origin` after.
    ``model``: the scenario's model (hooks go on its modules when it is an nn.Module);
    ``tensors``: the trained tensors by name; ``path``: the scenario file as it was compiled,
    whose lines name the torch calls.
    """

    def __init__(self, model: Any, tensors: dict[str, torch.Tensor], path: Path):
        super().__init__()
        self._model = model if isinstance(model, nn.Module) else None
        self._tensors = tensors
        self._file = str(path)
        self._handles: list[Any] = []
        self._in_module = 0
        self.module: str | None = None  # the first module whose output went non-finite
        self.call: str | None = None  # the first torch call whose result did
        self.gradient: str | None = None  # the first tensor whose gradient did, in backward

    @property
    def origin(self) -> str | None:
        """Where the NaN/Inf began, as a phrase (``the output of module body.3 (Divide)``); None
        when nothing the probe saw went non-finite (the step ran differently again)."""
        return self.module or self.call or self.gradient

    # --- putting it on and off ----------------------------------------------------------

    def __enter__(self) -> OriginProbe:
        if self._model is not None:
            for name, module in self._model.named_modules():
                label = f"{name or 'model'} ({type(module).__name__})"
                self._handles.append(module.register_forward_pre_hook(self._entered))
                self._handles.append(module.register_forward_hook(self._module_done(label)))
        for name, t in self._tensors.items():
            if t.requires_grad:
                self._handles.append(t.register_hook(self._gradient_of(f"grad of {name}")))
        return super().__enter__()

    def __exit__(self, *exc: object) -> None:
        try:
            super().__exit__(*exc)
        finally:
            for handle in self._handles:
                handle.remove()
            self._handles.clear()

    # --- forward ------------------------------------------------------------------------

    def _entered(self, _module: nn.Module, _inputs: Any) -> None:
        self._in_module += 1

    def _module_done(self, label: str):
        def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
            self._in_module -= 1
            for t in output_tensors(output):
                if self.module is None and nonfinite(t):
                    self.module = f"the output of module {label}"
                if t.requires_grad:
                    t.register_hook(self._gradient_of(f"the gradient of the output of module {label}"))

        return hook

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if self._in_module or not isinstance(out, torch.Tensor):
            return out  # inside a module, the module is named
        where = self._where()
        if where is not None:
            what = f"the result of {_call_name(func)} on {where}"
            if self.call is None and self.module is None and nonfinite(out):
                self.call = what
            if out.requires_grad:
                out.register_hook(self._gradient_of(f"the gradient of {what}"))
        return out

    def _where(self) -> str | None:
        """``line N`` of the innermost call from the scenario file (the messages name the file
        already); None when none is on the stack."""
        frame = sys._getframe(2)
        while frame is not None:
            if frame.f_code.co_filename == self._file:
                return f"line {frame.f_lineno}"
            frame = frame.f_back
        return None

    # --- backward -----------------------------------------------------------------------

    def _gradient_of(self, what: str):
        def hook(grad: torch.Tensor) -> None:
            if self.gradient is None and isinstance(grad, torch.Tensor) and nonfinite(grad):
                self.gradient = what

        return hook
