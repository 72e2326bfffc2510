"""Stringifiers for numbers, shapes and tensor views: pure, torch-free, never raise.

The screen formats the records it is sent with these, so a widget needs no torch;
gdtui.engine.summarize re-exports them for the engine's own printers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from gdtui.engine.records import TensorView


def format_number(x: Any, digits: int = 5) -> str:
    """A number in ``digits`` significant digits: 2.8265, -0.035512, 1.53e+04, nan."""
    try:
        x = float(x)
    except (TypeError, ValueError):
        return "?"
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if x == 0:
        return "0"
    if 1e-4 <= abs(x) < 10 ** (digits + 1):
        return f"{x:.{digits}g}"
    return f"{x:.{max(digits - 2, 1)}e}"


def format_shape(shape: Sequence[int]) -> str:
    try:
        return "(" + ", ".join(str(int(n)) for n in shape) + ("," if len(shape) == 1 else "") + ")"
    except (TypeError, ValueError):
        return "?"


def format_values(values: Any, digits: int = 5, limit: int = 8) -> str:
    """Nested values as ``[[2.8265], [1.3553]]``, eliding past ``limit`` per level."""
    try:
        if isinstance(values, list):
            shown = [format_values(v, digits, limit) for v in values[:limit]]
            if len(values) > limit:
                shown.append(f"… +{len(values) - limit}")
            return "[" + ", ".join(shown) + "]"
        return format_number(values, digits)
    except Exception:  # a stringifier never raises
        return "?"


def format_view(view: TensorView | None, digits: int = 5, limit: int = 8) -> str:
    """Values for a small tensor, else ``μ=… σ=… [min, max]``; ``—`` for no tensor."""
    if view is None:
        return "—"
    try:
        bad = ""
        if not view.finite:
            bad = f" ⚠ nan={view.nan} inf={view.inf}"
        if view.flat is not None and view.numel <= limit:
            return format_values(view.values, digits, limit) + bad
        if view.norm_only:
            return f"‖·‖={format_number(view.norm, 3)}{bad}"
        return (
            f"μ={format_number(view.mean, 3)} σ={format_number(view.std, 3)} "
            f"[{format_number(view.min, 3)}, {format_number(view.max, 3)}]{bad}"
        )
    except Exception:
        return "?"
