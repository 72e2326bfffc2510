"""The numbers behind the step-debugger's charts, as frozen plain-Python records.

Every function here runs in the app's worker thread, never the UI thread. The
ones that evaluate the scenario's model or loss do so under ``torch.no_grad()``
with every ``nn.Module`` of the scenario in eval mode (Dropout off, BatchNorm on
its running statistics: what the model does, not what a training step does),
put each module's own mode, the trained tensors, the modules' buffers and every
RNG back exactly as they found them, without bumping a tensor's version (a step
in progress still has its graph), and never touch the optimizer, so the session
steps on as if nothing happened.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from gdtui.engine.chart_records import ChartFrame, Histogram, LossLandscape, LossSeries, ModelFit, Points
from gdtui.engine.scenario import Scenario

#: Re-exported: the records were defined here before they moved to a torch-free module.
__all__ = ["ChartFrame", "Histogram", "LossLandscape", "LossSeries", "ModelFit", "Points"]


# --- loss ------------------------------------------------------------------------------


def downsample(values: Sequence[float], width: int) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """At most ``width`` (index, value) pairs, evenly spread, always keeping the first and the last."""
    n = len(values)
    width = max(int(width), 2)
    if n <= width:
        return tuple(range(n)), tuple(values)
    idx = sorted({round(i * (n - 1) / (width - 1)) for i in range(width)})
    return tuple(idx), tuple(values[i] for i in idx)


#: The loss chart's points until the screen says how wide the chart is (and in ``gdtui bench``).
CHART_WIDTH = 60


def loss_series(losses: Sequence[float], width: int) -> LossSeries:
    idx, vals = downsample(losses, width)
    return LossSeries(steps=tuple(i + 1 for i in idx), losses=tuple(float(v) for v in vals), total=len(losses))


# --- helpers that keep the session untouched ---------------------------------------------


def _modules(sc: Scenario) -> list[nn.Module]:
    """Every nn.Module the scenario's model can reach: the model's, and those its namespace names
    (a function ``model`` calls them), each once."""
    found: dict[int, nn.Module] = {}
    for value in (sc.model, *sc.namespace.values()):
        if isinstance(value, nn.Module):
            for m in value.modules():
                found.setdefault(id(m), m)
    return list(found.values())


class _Untouched:
    """Evaluate in eval mode with no grad; on exit put back each module's mode, the trained tensors,
    the modules' buffers and every RNG, bit for bit. Tensors are written through ``.data``, which
    leaves their version counters alone: the graph of a step in progress stays valid."""

    def __init__(self, tensors: Sequence[torch.Tensor], sc: Scenario):
        self.modules = _modules(sc)
        seen: set[int] = {id(t) for t in tensors}
        self.tensors = list(tensors)
        for m in self.modules:
            for b in m.buffers(recurse=False):
                if id(b) not in seen:
                    seen.add(id(b))
                    self.tensors.append(b)

    def __enter__(self) -> _Untouched:
        self.saved = [t.detach().clone() for t in self.tensors]
        self.modes = [(m, m.training) for m in self.modules]
        self.torch_rng = torch.get_rng_state()
        self.cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
        self.np_rng = np.random.get_state()
        self.py_rng = random.getstate()
        self.no_grad = torch.no_grad()
        self.no_grad.__enter__()
        for m in self.modules:
            m.training = False
        return self

    def __exit__(self, *exc: object) -> None:
        for m, training in self.modes:
            m.training = training
        for t, s in zip(self.tensors, self.saved):
            t.data.copy_(s)
        self.no_grad.__exit__(None, None, None)
        torch.set_rng_state(self.torch_rng)
        if self.cuda_rng is not None:
            torch.cuda.set_rng_state_all(self.cuda_rng)
        np.random.set_state(self.np_rng)
        random.setstate(self.py_rng)


def _flat(t: Any) -> torch.Tensor | None:
    return t.detach().reshape(-1).double() if isinstance(t, torch.Tensor) else None


def _features(x: Any) -> int | None:
    """How many input features ``x`` holds: (N,) or (N, 1) is one, (N, 2) is two."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        return None
    if x.dim() == 1 or (x.dim() == 2 and x.shape[1] == 1):
        return 1
    if x.dim() == 2 and x.shape[1] == 2:
        return 2
    return None


def fit_kind(sc: Scenario) -> str | None:
    """Which model-against-data view applies: "curve", "boundary" or None. Cheap: no model call."""
    if sc.model is None or sc.full_batch is None:
        return None
    x, y = sc.full_batch
    n = _features(x)
    if n is None or not isinstance(y, torch.Tensor) or y.numel() != x.shape[0]:
        return None
    if n == 1:
        return "curve"
    values = torch.unique(y.detach())
    if values.numel() <= 2 and bool(((values == 0) | (values == 1)).all()):
        return "boundary"
    return None


def _predict(sc: Scenario, grid: torch.Tensor) -> list[float] | None:
    with torch.device(sc.device):
        pred = sc.model(grid)
    if not isinstance(pred, torch.Tensor) or pred.numel() != grid.shape[0]:
        return None
    return pred.detach().reshape(-1).double().tolist()


def _sample(xs: list[float], ys: list[float], limit: int = 400) -> Points:
    step = max(1, math.ceil(len(xs) / limit))
    return tuple(xs[::step]), tuple(ys[::step])


def model_fit(sc: Scenario, tensors: Sequence[torch.Tensor], points: int = 60) -> ModelFit | None:
    """The model's curve or decision boundary at the current parameters, with the data. None when neither applies."""
    kind = fit_kind(sc)
    if kind is None:
        return None
    x, y = sc.full_batch
    with _Untouched(tensors, sc):
        try:
            if kind == "curve":
                xs = _flat(x).tolist()
                lo, hi = min(xs), max(xs)
                pad = (hi - lo) * 0.05 or 1.0
                grid = torch.linspace(lo - pad, hi + pad, points, dtype=x.dtype, device=x.device).reshape(
                    (points,) + tuple(x.shape[1:])
                )
                pred = _predict(sc, grid)
                if pred is None:
                    return None
                return ModelFit("curve", _sample(xs, _flat(y).tolist()), (tuple(_flat(grid).tolist()), tuple(pred)))
            return _boundary(sc, x, y, points)
        except Exception:  # noqa: BLE001 - a chart never breaks the session
            return None


def _boundary(sc: Scenario, x: torch.Tensor, y: torch.Tensor, points: int) -> ModelFit | None:
    cols = x.detach().double()
    lo, hi = cols.amin(0).tolist(), cols.amax(0).tolist()
    axes = []
    for a, b in zip(lo, hi):
        pad = (b - a) * 0.05 or 1.0
        axes.append(torch.linspace(a - pad, b + pad, points, dtype=torch.float64))
    g0, g1 = torch.meshgrid(axes[0], axes[1], indexing="ij")
    grid = torch.stack([g0.reshape(-1), g1.reshape(-1)], 1).to(dtype=x.dtype, device=x.device)
    pred = _predict(sc, grid)
    if pred is None:
        return None
    threshold = 0.5 if all(0.0 <= p <= 1.0 for p in pred) else 0.0
    values = [[pred[i * points + j] - threshold for j in range(points)] for i in range(points)]
    bx, by = _crossings(axes[0].tolist(), axes[1].tolist(), values)
    labels = _flat(y).tolist()
    pts = cols.tolist()
    zero = _sample([p[0] for p, t in zip(pts, labels) if t < 0.5], [p[1] for p, t in zip(pts, labels) if t < 0.5])
    one = _sample([p[0] for p, t in zip(pts, labels) if t >= 0.5], [p[1] for p, t in zip(pts, labels) if t >= 0.5])
    return ModelFit("boundary", zero, one, (tuple(bx), tuple(by)), threshold)


def _crossings(ax0: list[float], ax1: list[float], values: list[list[float]]) -> tuple[list[float], list[float]]:
    """Points where ``values`` (indexed [i along ax0][j along ax1]) changes sign, by linear interpolation."""
    xs: list[float] = []
    ys: list[float] = []
    n0, n1 = len(ax0), len(ax1)
    for i in range(n0):
        for j in range(n1):
            v = values[i][j]
            if j + 1 < n1:
                w = values[i][j + 1]
                if (v < 0) != (w < 0) and math.isfinite(v) and math.isfinite(w):
                    t = v / (v - w)
                    xs.append(ax0[i])
                    ys.append(ax1[j] + t * (ax1[j + 1] - ax1[j]))
            if i + 1 < n0:
                w = values[i + 1][j]
                if (v < 0) != (w < 0) and math.isfinite(v) and math.isfinite(w):
                    t = v / (v - w)
                    xs.append(ax0[i] + t * (ax0[i + 1] - ax0[i]))
                    ys.append(ax1[j])
    return xs, ys


# --- loss landscape ------------------------------------------------------------------------


def _loss_function(sc: Scenario) -> Callable[[], Any] | None:
    if sc.objective is not None:
        return sc.objective
    if sc.model is None or sc.full_batch is None:
        return None
    x, y = sc.full_batch
    return lambda: sc.loss_fn(sc.model(x), y)


def landscape_applies(sc: Scenario, tensors: Sequence[torch.Tensor]) -> bool:
    return _loss_function(sc) is not None and 1 <= sum(t.numel() for t in tensors) <= 2


def _axis(values: list[float], points: int) -> tuple[float, ...]:
    lo, hi = min(values), max(values)
    span = hi - lo
    pad = span * 0.25 if span > 0 else max(abs(lo) * 0.5, 1.0)
    lo, hi = lo - pad, hi + pad
    return tuple(lo + (hi - lo) * k / (points - 1) for k in range(points))


def loss_landscape(
    sc: Scenario,
    names: Sequence[str],
    tensors: Sequence[torch.Tensor],
    path: Sequence[Sequence[float]],
    previous: LossLandscape | None = None,
    points: int | None = None,
) -> LossLandscape | None:
    """The loss as a function of the one or two scalar parameters, around ``path``.

    Reuses ``previous``'s grid when the path still lies inside it (the loss over
    the grid does not depend on where the parameters are now).
    """
    fn = _loss_function(sc)
    sizes = [t.numel() for t in tensors]
    dims = sum(sizes)
    if fn is None or not 1 <= dims <= 2 or not path:
        return None
    path_t = tuple(tuple(float(v) for v in p) for p in path)
    if not all(math.isfinite(v) for p in path_t for v in p):
        path_t = tuple(p for p in path_t if all(math.isfinite(v) for v in p)) or path_t[:1]
    if previous is not None and previous.covers(path_t):
        return LossLandscape(previous.names, previous.axes, previous.losses, previous.contours, path_t)
    points = points or (80 if dims == 1 else 30)
    axes = tuple(_axis([p[i] for p in path_t], points) for i in range(dims))
    labels = tuple(n if s == 1 else f"{n}[{k}]" for n, s in zip(names, sizes) for k in range(s))
    with _Untouched(tensors, sc):
        try:
            flat = [(t, k) for t in tensors for k in range(t.numel())]

            def at(*coords: float) -> float:
                for (t, k), v in zip(flat, coords):
                    t.data.view(-1)[k] = v  # .data: no version bump (see _Untouched)
                with torch.device(sc.device):
                    out = fn()
                return float(out.detach().reshape(()).double()) if isinstance(out, torch.Tensor) else float(out)

            if dims == 1:
                losses = tuple(at(v) for v in axes[0])
                return LossLandscape(labels, axes, losses, (), path_t)
            grid = [[at(a, b) for b in axes[1]] for a in axes[0]]
        except Exception:  # noqa: BLE001 - a chart never breaks the session
            return None
    return LossLandscape(labels, axes, (), _contours(axes, grid), path_t)


def _contours(axes: tuple[tuple[float, ...], ...], grid: list[list[float]], levels: int = 6) -> tuple[tuple[float, Points], ...]:
    finite = sorted(v for row in grid for v in row if math.isfinite(v))
    if not finite:
        return ()
    lo, hi = finite[0], finite[-1]
    if hi <= lo:
        return ()
    # levels spread on a log scale above the minimum: bowls have most detail near the bottom
    span = hi - lo
    out = []
    for k in range(1, levels + 1):
        level = lo + span * (10 ** (k / levels * 2) - 1) / (10**2 - 1)
        values = [[v - level for v in row] for row in grid]
        xs, ys = _crossings(list(axes[0]), list(axes[1]), values)
        if xs:
            out.append((level, (tuple(xs), tuple(ys))))
    return tuple(out)


# --- histogram ---------------------------------------------------------------------------


#: The histogram counts this many values at a time: its bin indices stay small, and any count is exact.
HISTOGRAM_CHUNK = 1 << 22


def histogram(t: torch.Tensor, bins: int = 30) -> Histogram:
    """Counts of ``t``'s finite values in ``bins`` equal bins over their range, on ``t``'s device; one host transfer.

    Counted with integer bincounts chunk by chunk: torch.histc counts in the
    input's dtype, and a float32 count stops at 2**24 (16,777,216), so a bin of
    a 1e8-element tensor would come out short.
    """
    with torch.no_grad():
        flat = t.detach().reshape(-1)
        if flat.is_complex():
            flat = flat.abs()
        flat = flat.float() if flat.dtype != torch.float64 else flat
        ok = torch.isfinite(flat)
        good = flat[ok]
        bad = flat.numel() - good.numel()
        if good.numel() == 0:
            return Histogram(0.0, 0.0, (), bad)
        lo, hi = good.amin(), good.amax()
        # The bins in float64 (MPS has none): hi - lo of float32 values may overflow float32 or
        # fall below its smallest normal number.
        wide = torch.float32 if good.device.type == "mps" else torch.float64
        low = lo.to(wide)
        scale = bins / (hi.to(wide) - low).clamp_min(torch.finfo(wide).tiny)
        counts = torch.zeros(bins, dtype=torch.int64, device=good.device)
        for chunk in good.split(HISTOGRAM_CHUNK):
            counts += torch.bincount(((chunk.to(wide) - low) * scale).long().clamp_(0, bins - 1), minlength=bins)
        host = torch.cat([torch.stack([lo, hi]).double(), counts.double()]).tolist()
    lo, hi, counts = host[0], host[1], [int(c) for c in host[2:]]
    if lo == hi:  # one value: its bin is the middle one
        counts = [0] * bins
        counts[bins // 2] = good.numel()
    return Histogram(lo, hi, tuple(counts), bad)
