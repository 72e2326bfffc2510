"""What an attached script's step is, as frozen records: its StepRecord, its source panel, the
batch its model was called with, and its optimizer's hyper-parameters (for the trace's optimizer
line). Pure functions of what gdtui.engine.attach's hooks saw; gdtui.engine.script_source calls
them while the script is parked.
"""

from __future__ import annotations

import ast
import linecache
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from gdtui.engine.attach import ScriptStep
from gdtui.engine.records import BatchArg, SourcePanel, StepRecord, frozen_map
from gdtui.engine.summarize import summarize, unknown_view

#: The most lines a source panel shows.
PANEL_LINES = 24


def _enclosing_lines(file: str, line: int) -> tuple[int, int]:
    """The innermost loop (else function) around ``line`` in ``file``, as (first, last) lines."""
    try:
        tree = ast.parse(Path(file).read_text())
    except (OSError, SyntaxError, ValueError):
        return max(1, line - 6), line + 6
    best: tuple[int, int] | None = None
    fallback: tuple[int, int] | None = None
    for node in ast.walk(tree):
        end = getattr(node, "end_lineno", None)
        if end is None or not (node.lineno <= line <= end):
            continue
        span = (node.lineno, end)
        if isinstance(node, (ast.For, ast.While, ast.AsyncFor)):
            if best is None or span[1] - span[0] < best[1] - best[0]:
                best = span
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if fallback is None or span[1] - span[0] < fallback[1] - fallback[0]:
                fallback = span
    return best or fallback or (max(1, line - 6), line + 6)


def source_panel(where: tuple[str, int] | None, call: str) -> SourcePanel | None:
    """The script's lines around ``where``: its innermost loop, at most PANEL_LINES, centred on it."""
    if where is None:
        return None
    file, line = where
    first, last = _enclosing_lines(file, line)
    if last - first + 1 > PANEL_LINES:
        first = max(first, line - PANEL_LINES // 2)
        last = first + PANEL_LINES - 1
    lines = tuple(linecache.getline(file, n).rstrip("\n") for n in range(first, last + 1))
    while lines and not lines[-1].strip():
        lines = lines[:-1]
    return SourcePanel(file=file, line=line, first=first, lines=lines, call=call)


def _batch_items(call: tuple[tuple[Any, ...], dict[str, Any]] | None) -> list[tuple[str, Any]]:
    if call is None:
        return []
    args, kwargs = call
    items: list[tuple[str, Any]] = []
    for i, value in enumerate(args):
        if isinstance(value, Mapping):
            items += [(f"args[{i}][{k!r}]", v) for k, v in value.items()]
        else:
            items.append((f"args[{i}]", value))
    for key, value in kwargs.items():
        if isinstance(value, Mapping):
            items += [(f"{key}[{k!r}]", v) for k, v in value.items()]
        else:
            items.append((key, value))
    return items


def batch_args(call: tuple[tuple[Any, ...], dict[str, Any]] | None, max_values: int) -> tuple[BatchArg, ...]:
    """What the root module was called with: each tensor's name, shape, dtype and view (dict
    batches by key); anything else as a short repr. Never raises."""
    items = _batch_items(call)
    tensors = [v for _, v in items if isinstance(v, torch.Tensor)]
    try:
        views = iter(summarize([t.detach() for t in tensors], max_values))
    except Exception:  # a tensor subclass summarize cannot read: shapes only
        views = iter([None] * len(tensors))
    out = []
    for name, value in items:
        if isinstance(value, torch.Tensor):
            out.append(BatchArg(name, tuple(value.shape), str(value.dtype).removeprefix("torch."), next(views)))
        else:
            try:
                text = repr(value)
            except Exception:
                text = f"<{type(value).__name__}>"
            out.append(BatchArg(name, None, None, text=text if len(text) <= 80 else text[:77] + "..."))
    return tuple(out)


def _lr_of(step: ScriptStep) -> float:
    if step.optimizer is None or not step.optimizer.param_groups:
        return math.nan
    return float(step.optimizer.param_groups[0].get("lr", math.nan))


def step_record(step: ScriptStep, max_values: int, large: str = "full", mode: str | None = None) -> StepRecord:
    """The frozen record of a finished script step: its tensors after the update, the gradients
    the update used and the change it made (unmeasured where no copy was taken at the pause).
    Tensors of more than ``max_values`` elements are summarised on their device, as ``large``
    says (gdtui.engine.summarize)."""
    names = [n for n, _ in step.tensors]
    tensors = [t for _, t in step.tensors]
    grads = step.grads if step.grads is not None else [t.grad for t in tensors]
    befores = step.before if len(step.before) == len(tensors) else [None] * len(tensors)
    with torch.no_grad():
        changes = [None if b is None else torch.sub(t.detach(), b, out=b) for t, b in zip(tensors, befores)]
    views = summarize([*tensors, *grads, *changes], max_values, large=large)
    n = len(tensors)
    params, grad_views, updates = views[:n], views[n : 2 * n], views[2 * n :]
    unmeasured = {name: unknown_view(t) for name, t in step.tensors}
    nonfinite = None
    if not step.skipped:
        if step.backwards and not math.isfinite(step.loss):
            nonfinite = f"the output of module {step.origin}" if step.origin else "loss"
        else:
            bad = [f"grad of {name}" for name, g in zip(names, grad_views) if g is not None and not g.finite]
            bad += [name for name, p in zip(names, params) if p is not None and not p.finite]
            nonfinite = bad[0] if bad else None
    return StepRecord(
        step=step.step, epoch=None, batch=None,
        mode=mode or ("optim" if step.kind == "optimizer" else "manual"),  # type: ignore[arg-type]
        grad_source="autograd", lr=_lr_of(step), loss=step.loss,
        params=frozen_map(dict(zip(names, params))),
        grads=frozen_map(dict(zip(names, grad_views))),
        updates=frozen_map({name: u if u is not None else unmeasured[name] for name, u in zip(names, updates)}),
        nonfinite=nonfinite, optimizer=step.index, skipped=step.skipped, scale=step.scale, clip_norm=step.clip,
    )


def _hyper(value: Any) -> Any:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return float(value)
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, (tuple, list)) and all(isinstance(v, (bool, int, float, str)) for v in value):
        return list(value)
    return repr(value)


def optimizer_groups(opt: torch.optim.Optimizer) -> list[dict[str, Any]]:
    """Every param group's hyper-parameters, and how many tensors it holds."""
    return [{"tensors": len(g["params"]), **{k: _hyper(v) for k, v in g.items() if k != "params"}}
            for g in opt.param_groups]
