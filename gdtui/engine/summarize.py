"""Tensor summaries and the stringifiers that print them.

Summaries are computed on each tensor's own device, stacked into one float64
vector per device, and moved to the host once: a large CUDA tensor is never
copied to the host to be shown. The stringifiers (format_number and the rest) live in
the torch-free gdtui.engine.formatting, so the screen can print records without torch;
they are imported here for the engine's printers and older imports.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from gdtui.engine.formatting import format_number, format_shape, format_values, format_view
from gdtui.engine.records import TensorView

__all__ = ["flat_values", "format_number", "format_shape", "format_values", "format_view", "scalars", "summarize",
           "summarize_step", "unknown_view"]

_STATS = 7  # mean, std, min, max, norm, nan count, inf count
_DEVICE_STATS = 5  # what a large tensor sends to the host: mean, std, min, max, norm


def _floating(t: torch.Tensor) -> torch.Tensor:
    if t.is_complex():
        return t.abs()
    if not t.is_floating_point():
        return t.double()
    return t if t.dtype in (torch.float32, torch.float64) else t.float()


def _stats(t: torch.Tensor) -> torch.Tensor:
    """Mean, std, min, max and norm of a large tensor, on its device, without a temporary copy.

    NaN and Inf counts are not here: a NaN or an Inf makes min or max non-finite,
    and only then does :func:`_bad_counts` make the extra passes to count them.
    """
    if t.numel() == 0:
        return torch.zeros(_DEVICE_STATS, dtype=torch.float64, device=t.device)
    t = _floating(t)
    lo, hi = torch.aminmax(t)
    # Separate reductions: on the CPU, torch.var_mean was slower than these together.
    stats = [t.sum() / t.numel(), t.std(correction=0), lo, hi, torch.linalg.vector_norm(t)]
    return torch.stack(stats).double()


def _norm(t: torch.Tensor) -> torch.Tensor:
    """The 2-norm of a large tensor, as a float64 one-element tensor on its device: one pass."""
    if t.numel() == 0:
        return torch.zeros(1, dtype=torch.float64, device=t.device)
    return torch.linalg.vector_norm(_floating(t)).reshape(1).double()


def _sum(t: torch.Tensor) -> torch.Tensor:
    """The sum of a large tensor: finite unless it holds a NaN or an Inf (or overflows). The cheapest pass."""
    if t.numel() == 0:
        return torch.zeros(1, dtype=torch.float64, device=t.device)
    return _floating(t).sum().reshape(1).double()


#: How a large tensor is summarised: everything, its norm (a light step whose norms a hint or a
#: stop condition reads), only whether it is finite (a light step no one reads but the NaN check),
#: or not at all (a light step whose NaN check is deferred; see Session.step).
LARGE_SUMMARIES = ("full", "norm", "finite", "unchecked")
_LARGE = {"full": _stats, "norm": _norm, "finite": _sum}


def _norm64(t: torch.Tensor) -> float:
    """The 2-norm accumulated in float64: for a finite tensor whose float32 norm overflowed
    (values past about 1e19 square to inf). Rare, so no faster path."""
    return torch.linalg.vector_norm(_floating(t), dtype=torch.float64).item()


def _stats64(t: torch.Tensor) -> list[float]:
    """Mean, std, min, max and norm, for a finite tensor whose float32 statistics overflowed."""
    t = _floating(t)
    lo, hi = torch.aminmax(t)
    mean = (t.sum(dtype=torch.float64) / t.numel()).item()
    norm = _norm64(t)
    scale = max(abs(lo.item()), abs(hi.item()))  # > 0: the float32 statistics overflowed
    std = (t / scale).std(correction=0).item() * scale  # scaled into range: no cancellation
    return [mean, std, lo.item(), hi.item(), norm]


def _bad_counts(t: torch.Tensor) -> tuple[int, int]:
    t = _floating(t)
    counts = torch.stack([torch.isnan(t).sum(), torch.isinf(t).sum()]).tolist()
    return int(counts[0]), int(counts[1])


def flat_values(values: Any) -> list[float]:
    """The numbers of nested values (``tolist()`` output) in order; [] for None."""
    if isinstance(values, list):
        return [x for v in values for x in flat_values(v)]
    return [] if values is None else [values]


def _segment_stats(flat: np.ndarray, sizes: list[int]) -> np.ndarray:
    """Per-segment mean, std, min, max, norm, nan and inf counts of a float64 vector, vectorised."""
    counts = np.asarray(sizes)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    with np.errstate(invalid="ignore", over="ignore"):
        mean = np.add.reduceat(flat, starts) / counts
        dev = flat - np.repeat(mean, counts)
        std = np.sqrt(np.add.reduceat(dev * dev, starts) / counts)
        lo = np.minimum.reduceat(flat, starts)
        hi = np.maximum.reduceat(flat, starts)
        norm = np.sqrt(np.add.reduceat(flat * flat, starts))
    nan = np.add.reduceat(np.isnan(flat), starts)
    inf = np.add.reduceat(np.isinf(flat), starts)
    return np.stack([mean, std, lo, hi, norm, nan, inf], axis=1)


#: Below this many values in all, statistics are computed in plain Python (faster than numpy's call overhead).
_PYTHON_STATS = 256
_NUMPY_DTYPES = (torch.float32, torch.float64, torch.float16)
_DTYPE_NAMES: dict[torch.dtype, str] = {}


def _host_values(tensors: list[torch.Tensor]) -> np.ndarray:
    """The flattened values of small tensors as one float64 array, with one transfer."""
    if all(t.is_cpu and t.dtype in _NUMPY_DTYPES for t in tensors):
        return np.concatenate([t.detach().reshape(-1).numpy() for t in tensors]).astype(np.float64)
    return torch.cat([t.detach().reshape(-1).double() for t in tensors]).cpu().numpy()


def _cpu_values(t: torch.Tensor) -> list[float]:
    """The values of a small CPU tensor, flat: ``tolist`` then flattened, cheaper than any torch reshape."""
    if not t.is_floating_point() or t.dtype == torch.bfloat16:
        t = t.double()
    values = t.tolist()
    if not isinstance(values, list):
        return [values]
    for _ in range(t.dim() - 1):
        values = [x for row in values for x in row]
    return values


def _view(t: torch.Tensor, row: list[float] | None, flat: list[float] | None, norm_only: bool = False) -> TensorView:
    dtype = _DTYPE_NAMES.get(t.dtype)
    if dtype is None:
        dtype = _DTYPE_NAMES[t.dtype] = str(t.dtype).removeprefix("torch.")
    stats = None
    if row is not None:
        mean, std, lo, hi, norm, nan, inf = row
        stats = (mean, std, lo, hi, norm, int(nan), int(inf))
    return TensorView(shape=tuple(t.shape), dtype=dtype, flat=flat, stats=stats, norm_only=norm_only)


def unknown_view(t: torch.Tensor) -> TensorView:
    """A view of a tensor that was not summarised at all (norm NaN, no NaN counted)."""
    return _view(t, [math.nan] * 5 + [0, 0], None, norm_only=True)


def summarize(
    tensors: Sequence[torch.Tensor | None], max_values: int, large: str | Sequence[str] = "full"
) -> list[TensorView | None]:
    """Views of ``tensors`` (None stays None), with one host transfer per device.

    Tensors of at most ``max_values`` elements carry their values, and their
    statistics are computed on the host from those values; larger ones are
    summarised on their own device and only the statistics travel, all of them
    or (``large``, see LARGE_SUMMARIES: one for all, or one per tensor) less:
    one pass instead of five.
    """
    views: list[TensorView | None] = [None] * len(tensors)
    by_device: dict[Any, list[int]] = {}
    for i, t in enumerate(tensors):
        if t is not None:
            by_device.setdefault("cpu" if t.is_cpu else t.device, []).append(i)
    for device, indices in by_device.items():
        small, big = [], []
        for i in indices:
            t = tensors[i]
            if 0 < t.numel() <= max_values and not t.is_complex():
                small.append(i)
            elif (large if isinstance(large, str) else large[i]) == "unchecked":
                views[i] = unknown_view(t)
            else:
                big.append(i)
        with torch.no_grad():
            if device == "cpu" and sum(tensors[i].numel() for i in small) <= _PYTHON_STATS:
                # A few small tensors: Python beats numpy's and torch's call overheads,
                # and the view computes its statistics from the values when asked.
                for i in small:
                    views[i] = _view(tensors[i], None, _cpu_values(tensors[i]))
                small = []
            _summarize_batched(tensors, small, big, views, on_cpu=device == "cpu", large=large)
    return views


def _summarize_batched(
    tensors: Sequence[torch.Tensor],
    small: list[int],
    large_ones: list[int],
    views: list[TensorView | None],
    on_cpu: bool,
    large: str | Sequence[str],
) -> None:
    """Views of one device's small tensors (values and all, statistics by numpy) and large ones
    (statistics only, or less: ``large``, one mode for all or one per tensor)."""
    if not small and not large_ones:
        return
    sizes = [tensors[i].numel() for i in small]
    n_small = sum(sizes)
    modes = [large if isinstance(large, str) else large[i] for i in large_ones]
    summaries = [_LARGE[mode](tensors[i].detach()) for i, mode in zip(large_ones, modes)]
    if on_cpu:
        host = _host_values([tensors[i] for i in small]) if small else np.zeros(0)
        big = torch.cat(summaries).numpy() if summaries else np.zeros(0)
    else:  # one transfer for the values and the statistics together
        parts = [tensors[i].detach().reshape(-1).double() for i in small]
        combined = torch.cat(parts + summaries).cpu().numpy()
        host, big = combined[:n_small], combined[n_small:]
    values = host.tolist()
    stats = _segment_stats(host, sizes).tolist() if small else []
    pos = 0
    for i, row, n in zip(small, stats, sizes):
        views[i] = _view(tensors[i], row, values[pos : pos + n])
        pos += n
    numbers, pos = big.tolist(), 0
    for i, mode in zip(large_ones, modes):
        if mode == "full":
            row = numbers[pos : pos + _DEVICE_STATS]
            pos += _DEVICE_STATS
            nan, inf = (0, 0) if math.isfinite(row[2]) and math.isfinite(row[3]) else _bad_counts(tensors[i].detach())
            if not (nan or inf or all(map(math.isfinite, row))):
                row = _stats64(tensors[i].detach())  # finite values whose float32 statistics overflowed
            views[i] = _view(tensors[i], row + [nan, inf], None)
            continue
        # A finite norm or sum means no NaN or Inf; a non-finite one may be an overflow: count.
        value = numbers[pos]
        pos += 1
        nan, inf = (0, 0) if math.isfinite(value) else _bad_counts(tensors[i].detach())
        if mode == "norm" and not (nan or inf or math.isfinite(value)):
            value = _norm64(tensors[i].detach())
        norm = value if mode == "norm" else math.nan
        views[i] = _view(tensors[i], [math.nan] * 4 + [norm, nan, inf], None, norm_only=True)


def summarize_step(
    tensors: Sequence[torch.Tensor],
    befores: Sequence[torch.Tensor | None],
    max_values: int,
    large: str = "full",
) -> tuple[list[TensorView], list[TensorView | None], list[TensorView]]:
    """Views of a finished step: each tensor, its gradient, and its change since ``before``.

    ``befores`` are copies of the tensors from before the update, in buffers
    this may overwrite: each becomes the change (after minus before), so no
    new memory is taken for it. One :func:`summarize` call for all three,
    large tensors summarised as ``large`` says (see LARGE_SUMMARIES); short of
    "full", a large tensor's change is summarised by its norm. A tensor with
    no ``before`` was not measured (see :func:`unknown_view`).
    """
    n = len(tensors)
    grads = [t.grad for t in tensors]
    changes: list[torch.Tensor] = []
    measured: list[int] = []
    modes = [large] * (2 * n)
    updates: list[TensorView | None] = [None] * n
    for i, (t, before) in enumerate(zip(tensors, befores)):
        if before is None:
            updates[i] = unknown_view(t)
            continue
        changes.append(torch.sub(t.detach(), before, out=before))  # detached: nothing is recorded
        measured.append(i)
        modes.append("norm" if large != "full" and t.numel() > max_values else large)
    views = summarize([*tensors, *grads, *changes], max_values, large=modes)
    for i, view in zip(measured, views[2 * n :]):
        updates[i] = view
    return views[:n], views[n : 2 * n], updates  # type: ignore[return-value]


def scalars(values: Sequence[Any]) -> list[float]:
    """Floats from numbers and one-element tensors, with one host transfer per device."""
    out: list[float] = [math.nan] * len(values)
    tensors: dict[torch.device, list[int]] = {}
    for i, v in enumerate(values):
        if isinstance(v, torch.Tensor):
            tensors.setdefault(v.device, []).append(i)
        else:
            out[i] = float(v)
    for device, indices in tensors.items():
        if device.type == "cpu":  # no transfer to save: item() is the cheapest
            for i in indices:
                out[i] = float(values[i].item())
            continue
        stacked = torch.stack([values[i].detach().reshape(()).double() for i in indices])
        for i, x in zip(indices, stacked.tolist()):
            out[i] = x
    return out
