"""Checking gradients against finite differences, on the session's own objects in float64.

A gradient says how much the loss changes when one number of a parameter
moves a little. That can be measured without calculus: move the number by a
small ``h`` up and down, evaluate the loss both times, and divide the
difference by ``2h`` (a *central finite difference*). If autograd, or a
hand-written ``grad_fn``, disagrees with that measurement, the gradient is
wrong.

The check runs the code the session runs, on the session's own objects: every
tensor the loss can reach (the trained tensors, the modules' buffers, the
namespace's tensors and modules, and those a function of the scenario holds in
its closure) is given a float64 working copy in place (``t.data = …``, which
keeps every reference to it valid) and gets its own data back, bit for bit,
afterwards. Float tensors the forward makes are float64 too: the check runs
with float64 as the default dtype, and a ``dtype=torch.float32`` argument is
read as float64. The loss is evaluated on the batch the session is on; to see
the next batch of a DataLoader it takes it from the session's data stream and
seeks back, as a rewind does. The global RNGs, the data position, the
namespace's names and the scenario module are put back as they were.

Only where the loss uses a float32 tensor gdtui cannot reach (one held by an
object of the scenario's own class, say) does it load the file again, with
float64 as the default dtype, and check that copy; the report says so, and
says when the file has changed since the session loaded it.

This module holds the check and its report (what to measure, the verdicts);
the loss evaluations it asks for are in :mod:`gdtui.engine.gradcheck_probe`.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from gdtui.engine.errors import ScenarioError, one_line
from gdtui.engine.gradcheck_probe import (
    CheckCancelled as CheckCancelled,  # raised by gradient_check; callers import it from here
)
from gdtui.engine.gradcheck_probe import (
    _as64,
    _batch,
    _changed_on_disk,
    _InPlace,
    _is_out_of_memory,
    _load_copy,
    _NotReachable,
    _Probe,
    _reachable,
    _working_bytes,
)
from gdtui.engine.scenario import MODULE_NAME, Scenario
from gdtui.engine.snapshot import RngState
from gdtui.engine.summarize import format_number

#: Entries of a tensor this small are all checked.
SMALL = 32
#: Entries drawn from a larger tensor whose random direction disagrees with autograd, to say where.
DEFAULT_SAMPLES = 4
#: An entry whose central difference disagrees with autograd is measured again with steps
#: h/KINK_SCALE and h·KINK_SCALE: where the three differ, the loss has a corner within reach.
KINK_SCALE = 16


@dataclass(frozen=True)
class TensorCheck:
    """Autograd against finite differences for one trained tensor.

    ``checked`` entries, and with ``direction`` one random direction over every entry
    (the directional derivative g·v against the difference along v), checked first: entries
    of a tensor with a direction are checked only when the direction disagrees.
    ``max_abs_error``/``max_rel_error`` are over the checked entries not at a
    kink; the relative error is |autograd − fd| / max(|autograd|, |fd|, noise),
    where noise is what rounding alone can make the difference quotient be.
    ``verdict`` is "ok", "at a kink" (every disagreement sits where the loss has
    a corner, see :func:`gradient_check`) or "mismatch".
    """

    name: str
    shape: tuple[int, ...]
    checked: int
    numel: int
    max_abs_error: float
    max_rel_error: float
    kinks: int
    worst_index: tuple[int, ...] | None
    verdict: str
    direction: bool = False


@dataclass(frozen=True)
class GradFnCheck:
    """The scenario's ``grad_fn`` against autograd for one tensor, every entry.

    ``ratio`` is the least-squares c in grad_fn ≈ c × autograd (None when
    autograd is zero). ``verdict``: "matches autograd", "≈4× autograd" (when
    grad_fn is that constant multiple) or "differs from autograd".
    """

    name: str
    max_abs_error: float
    max_rel_error: float
    ratio: float | None
    verdict: str


@dataclass(frozen=True)
class GradCheckReport:
    path: str
    step: int  # finished steps
    next_phase: str
    batch: str  # which batch the loss was evaluated on, in words
    dtype: str  # the dtype the loss came out in (float64 unless something stayed float32)
    loss: float
    tensors: tuple[TensorCheck, ...]
    grad_fn: tuple[GradFnCheck, ...]
    notes: tuple[str, ...]
    live: bool = True  # checked on the session's own objects (False: on a fresh load of the file)

    @property
    def ok(self) -> bool:
        """True when autograd passes (kinks allowed) and grad_fn, if any, matches it."""
        return all(t.verdict != "mismatch" for t in self.tensors) and all(
            g.verdict == "matches autograd" for g in self.grad_fn
        )

    def lines(self) -> list[str]:
        """Short text for headless output."""
        out = [
            (f"gradient check after step {self.step} (next: {self.next_phase}), on {self.batch}, "
             f"in {self.dtype}: loss {format_number(self.loss, 8)}")
        ]
        width = max((len(t.name) for t in self.tensors), default=0)
        for t in self.tensors:
            kink = f", {t.kinks} at a kink" if t.kinks else ""
            if t.direction:
                what = f"1 direction + {t.checked}/{t.numel} entries" if t.checked else f"1 direction of {t.numel} entries"
            else:
                what = f"{t.checked}/{t.numel} entries"
            out.append(
                f"  {t.name:<{width}}  {what}  max abs err {_sci(t.max_abs_error)}  "
                f"max rel err {_sci(t.max_rel_error)}{kink}  {t.verdict}"
            )
        if self.grad_fn:
            out.append("grad_fn against autograd:")
            for g in self.grad_fn:
                out.append(f"  {g.name:<{width}}  {g.verdict}  (max abs diff {_sci(g.max_abs_error)})")
        out += [f"  note: {n}" for n in self.notes]
        return out


def _sci(x: float) -> str:
    return "0" if x == 0 else f"{x:.2g}"


def _mb(nbytes: float) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20)):
        if nbytes >= size:
            return f"{nbytes / size:.1f} {unit}"
    return f"{nbytes / 2**10:.1f} KiB"


def gradient_check(session: Any, *, samples: int | None = None, seed: int = 0,
                   progress: Callable[[int, int, str], None] | None = None,
                   cancelled: Callable[[], bool] | None = None) -> GradCheckReport:
    """Compare autograd (and grad_fn) with central finite differences at the current parameters.

    Each tensor gets its own step h = ε^(1/3)·max(rms, 0.001), rms its root mean
    square (1 for an all-zero tensor) and ε the loss dtype's machine epsilon
    (6e-6·rms in float64): the
    difference quotient errs by about h²·f'''/6 (truncation) plus ε·|loss|/h
    (rounding), and this h balances the two at the tensor's own scale. The RNG
    is restored before every loss evaluation, so dropout-like randomness is the
    same each time.

    A ReLU or a max-pool (or abs, clamp, max) has a corner, a *kink*: the
    derivative jumps. When p_i ± h straddles one, the central difference
    averages the two sides and matches neither. An entry where autograd and
    the difference disagree is measured again with steps h/16 and 16·h: if
    those differ from each other (the loss is not smooth within reach), or
    autograd matches one one-sided difference while the two sides disagree, it
    is counted "at a kink" rather than a mismatch. A wrong gradient on a smooth
    loss gives three differences that agree with each other and not with it.

    Tensors of at most 32 entries are checked entry by entry. A larger one is
    checked along one random direction v over all its entries, drawn with a
    private ``torch.Generator(seed)``: autograd's g·v against the difference
    along v, two loss evaluations, which catch a wrong gradient anywhere in the
    tensor. Only where they disagree are ``samples`` of its entries (default:
    the session's ``gradcheck_samples``, drawn with the same generator)
    measured too, to say where. A direction moves every unit downstream, so in a
    ReLU net it often crosses corners; it passes as "at a kink" without its
    entries only when what the difference still misses at h/16 is at most 2/15
    of what it moved between h/16 and h (the corners' effect shrinks at least
    as fast as the step; a wrong gradient's does not). The perturbed evaluations of one
    tensor run as one batch (torch.func.vmap) where the model allows it.

    ``progress(k, n, name)`` is called before the k-th of n tensors;
    ``cancelled()`` is polled between evaluations, and CheckCancelled raised
    when it returns True. Out of memory, it raises a one-line ScenarioError
    saying what the float64 copies need and which ``samples`` to use.
    """
    if samples is None:
        samples = getattr(session, "gradcheck_samples", DEFAULT_SAMPLES)
    live = session.loop
    sc = live.sc
    rng = live.capture_rng()
    module = sys.modules.get(MODULE_NAME)
    bindings = dict(sc.namespace)
    default_dtype = torch.get_default_dtype()
    tensors = _reachable(sc, live)
    try:
        torch.set_default_dtype(torch.float64)
        inputs, targets, where, forward_rng = _batch(session, rng)
        notes: list[str] = []
        try:
            with _InPlace(tensors) as swap:
                probe = _Probe(sc, _as64(inputs), _as64(targets), forward_rng or rng, bindings, cancelled, swap.work)
                report = _check(session, sc, probe, where, forward_rng is None, samples, seed, progress)
        except _NotReachable as exc:
            copy = _load_copy(session)
            probe = _Probe(copy, _as64(inputs), _as64(targets), forward_rng or rng, dict(copy.namespace), cancelled,
                           {}, strict=False)
            report = _check(session, copy, probe, where, forward_rng is None, samples, seed, progress)
            notes.append(f"checked a fresh load of the file, not the session's own objects: {exc}")
            report = dataclasses.replace(report, live=False)
        if _changed_on_disk(session):
            notes.append("the file has changed since the session loaded it: " + (
                "this checked the code the session runs (r loads the new one)" if report.live
                else "this checked the code on disk, which the session does not run; r loads it"))
        return dataclasses.replace(report, notes=report.notes + tuple(notes)) if notes else report
    except (RuntimeError, MemoryError) as exc:
        if not _is_out_of_memory(exc):
            raise
        need = (f"its float64 copies of the {len(tensors)} tensors the loss uses need "
                f"{_mb(_working_bytes(tensors))} besides the session's, plus a float64 forward and backward")
        # A batch of perturbed forwards that does not fit falls back to one at a time (Probe.values),
        # so no --gradcheck-samples makes this fit: only memory does.
        advice = ("free memory, or run the check where there is more (--device cpu, a larger device); "
                  "--gradcheck-samples does not change this: the check evaluates one perturbation at a time when a batch does not fit")
        raise ScenarioError(f"gradient check: out of memory ({one_line(exc, 80)}): {need}; {advice}",
                            session.path) from None
    finally:
        torch.set_default_dtype(default_dtype)
        sc.namespace.clear()
        sc.namespace.update(bindings)
        rng.restore()
        if module is not None:
            sys.modules[MODULE_NAME] = module
        else:
            sys.modules.pop(MODULE_NAME, None)


def _check(session: Any, sc: Scenario, probe: _Probe, where: str, in_progress: bool, samples: int, seed: int,
           progress: Callable[[int, int, str], None] | None) -> GradCheckReport:
    tensors = list(sc.params.values())
    loss = probe.loss()
    if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
        raise sc.error("gradient check: the loss is not a scalar tensor", "loss_fn", "loss")
    grads = torch.autograd.grad(loss, tensors, allow_unused=True)
    grads = [torch.zeros_like(t) if g is None else g.detach() for t, g in zip(tensors, grads)]
    notes = []
    if _drew_random_numbers(probe.rng):
        n = session.step_count + 1
        notes.append(
            "the loss draws random numbers (dropout?): every evaluation here reuses one set of draws, "
            + (f"but not the ones step {n}'s forward already drew" if in_progress else f"the ones step {n}'s forward will draw")
        )
    if loss.dtype != torch.float64:
        notes.append(f"the loss came out in {loss.dtype}: a tensor gdtui could not convert stayed low-precision")
    fn_checks = _check_grad_fn(sc, grads, probe) if sc.grad_fn is not None else ()
    gen = torch.Generator().manual_seed(seed)
    checks = []
    located: list[str] = []
    eps = torch.finfo(loss.dtype).eps
    l0 = loss.item()
    for k, (name, t, g) in enumerate(zip(sc.params, tensors, grads)):
        if progress is not None:
            progress(k + 1, len(tensors), name)
        n = t.numel()
        flat = list(range(n)) if n <= SMALL else sorted(torch.randperm(n, generator=gen)[:samples].tolist())
        v = None
        if n > SMALL:
            v = torch.randn(t.shape, generator=gen, dtype=torch.float64).to(t.device)
            v = v / v.norm() * math.sqrt(n)  # root mean square 1, as an entry's unit step
        check = _check_tensor(name, t, g, flat, v, probe, l0, eps)
        if check.direction and check.checked:
            located.append(f"{name}: its random direction disagreed, so {check.checked} of its {n} entries were "
                         f"checked too, drawn with seed {seed}")
        checks.append(check)
    if any(c.direction for c in checks):
        notes.append(f"tensors of more than {SMALL} entries are checked along one random direction over all "
                        f"their entries (drawn with seed {seed}), and at {samples} of their entries where it disagrees")
    notes += located
    if probe.retyped:
        lines = ", ".join(str(n) for n in sorted(probe.retyped))
        notes.append(f"line{'s' if len(probe.retyped) > 1 else ''} {lines} ask{'' if len(probe.retyped) > 1 else 's'} "
                     "for a float32 tensor: the check made it float64")
    dtype = str(loss.dtype).removeprefix("torch.")
    return GradCheckReport(str(session.path), session.step_count, session.next_phase, where, dtype, l0,
                           tuple(checks), tuple(fn_checks), tuple(notes))


def _check_tensor(name: str, t: torch.Tensor, g: torch.Tensor, flat: list[int], v: torch.Tensor | None,
                  probe: _Probe, l0: float, eps: float) -> TensorCheck:
    """Central differences against autograd's ``g`` (see gradient_check for the step and the kinks).

    With a direction ``v`` (a large tensor), the difference along ``v`` comes first, and the
    entries ``flat`` (flat indices) are measured only when it disagrees, to find where; without
    one, the entries ``flat`` are all measured."""
    with torch.no_grad():
        rms = t.detach().pow(2).mean().sqrt().item() if t.numel() else 1.0
    h = eps ** (1 / 3) * (max(rms, 1e-3) if rms > 0 else 1.0)  # an all-zero tensor (a fresh bias): unit scale
    rtol = max(1e-5, 1e3 * eps ** (2 / 3))
    noise = 100 * eps * max(1.0, abs(l0))  # what rounding alone can make a quotient be, times the step

    def close(u: float, w: float, step: float) -> bool:
        return abs(u - w) <= noise / step + rtol * max(abs(u), abs(w))

    explained: set[int] = set()

    def measure(points: list[tuple[int | None, float, float]]) -> tuple[list[float], set[int]]:
        """The central differences at ``points`` (flat index or None for the direction, the
        unperturbed value or 0, autograd's derivative), and which of them sit at a kink
        (``explained``: those whose disagreement the corners account for)."""

        def rows_for(k: int, step: float) -> list[tuple[int | None, float]]:
            i, p, _ = points[k]
            return [(i, p + step), (i, p - step)] if i is not None else [(None, step), (None, -step)]

        at_h = probe.values(t, [r for k in range(len(points)) for r in rows_for(k, h)], v)
        fd = [(at_h[2 * k] - at_h[2 * k + 1]) / (2 * h) for k in range(len(points))]
        suspects = [k for k, (_, _, a) in enumerate(points) if not close(a, fd[k], h)]
        kink: set[int] = set()
        explained.clear()
        if not suspects:
            return fd, kink
        small, large = h / KINK_SCALE, h * KINK_SCALE
        fwd = {k: (at_h[2 * k] - l0) / h for k in suspects}
        bwd = {k: (l0 - at_h[2 * k + 1]) / h for k in suspects}
        for k in suspects:  # autograd is one side's slope: the entry sits on a corner
            if (close(points[k][2], fwd[k], h) or close(points[k][2], bwd[k], h)) and not close(fwd[k], bwd[k], h):
                kink.add(k)
                explained.add(k)
        rest = [k for k in suspects if k not in kink]
        more = probe.values(t, [r for k in rest for r in rows_for(k, small)], v) if rest else []
        fd_small = {k: (more[2 * j] - more[2 * j + 1]) / (2 * small) for j, k in enumerate(rest)}
        for k in rest:
            if not close(fd_small[k], fd[k], small):  # the difference moves with the step
                kink.add(k)
                # Across many corners (a direction moves every unit downstream) the difference's
                # error shrinks at least as fast as the step: what it still misses at h/16 is
                # then at most 1/15 of what it moved from h (2/15 allowed). A wrong gradient
                # misses by more.
                if abs(points[k][2] - fd_small[k]) <= 2 / (KINK_SCALE - 1) * abs(fd[k] - fd_small[k]) + noise / small:
                    explained.add(k)
        rest = [k for k in rest if k not in kink]
        more = probe.values(t, [r for k in rest for r in rows_for(k, large)], v) if rest else []
        for j, k in enumerate(rest):
            if not close(fd[k], (more[2 * j] - more[2 * j + 1]) / (2 * large), h):
                kink.add(k)
        return fd, kink

    entries: list[tuple[int | None, float, float]] = []
    if flat:
        entries = list(zip(flat, t.detach().reshape(-1)[flat].tolist(), g.reshape(-1)[flat].tolist()))
    points: list[tuple[int | None, float, float]] = []
    fd: list[float] = []
    kink: set[int] = set()
    if v is not None:
        points = [(None, 0.0, (g * v).sum().item())]
        fd, kink = measure(points)
        if not explained and not close(points[0][2], fd[0], h):
            # the direction disagrees, more than corners explain: measure entries, to find where
            fd_e, kink_e = measure(entries)
            kink |= {k + 1 for k in kink_e}
            points, fd = points + entries, fd + fd_e
    else:
        points = entries
        fd, kink = measure(points)
    max_abs, max_rel, worst, worst_rel, bad = 0.0, 0.0, None, -1.0, False
    for k, (i, _, a) in enumerate(points):
        if k in kink:
            continue
        err = abs(a - fd[k])
        rel = err / max(abs(a), abs(fd[k]), noise / h)
        bad = bad or not close(a, fd[k], h)
        if i is not None and rel > worst_rel:
            worst_rel = rel
            worst = tuple(int(x) for x in torch.unravel_index(torch.tensor(i), t.shape)) if t.dim() else ()
        max_abs, max_rel = max(max_abs, err), max(max_rel, rel)
    verdict = "mismatch" if bad else ("at a kink" if kink else "ok")
    checked = sum(1 for i, _, _ in points if i is not None)
    return TensorCheck(name, tuple(t.shape), checked, t.numel(), max_abs, max_rel, len(kink), worst, verdict,
                       direction=v is not None)


def _drew_random_numbers(start: RngState) -> bool:
    """Whether the global torch generators moved since ``start`` was restored."""
    if not torch.equal(torch.get_rng_state(), start.torch_cpu):
        return True
    if start.torch_cuda:
        return any(not torch.equal(a, b) for a, b in zip(torch.cuda.get_rng_state_all(), start.torch_cuda))
    return False


def _check_grad_fn(sc: Scenario, grads: list[torch.Tensor], probe: _Probe) -> tuple[GradFnCheck, ...]:
    """grad_fn, called after a forward and loss at the same point as a step calls it, against autograd."""
    probe.loss()
    got = probe.run(sc.grad_fn, doing="grad_fn()")
    names = list(sc.params)
    if isinstance(got, dict) and all(n in got for n in names):
        given = [got[n] for n in names]
    elif isinstance(got, (tuple, list)) and len(got) == len(names):
        given = list(got)
    else:
        raise sc.error("grad_fn must return a dict name -> tensor, or a tuple in params order", "grad_fn")
    out = []
    for name, t, g, raw in zip(names, sc.params.values(), grads, given):
        f = torch.as_tensor(raw, dtype=torch.float64, device=t.device).detach()
        if f.shape != t.shape:
            raise sc.error(f"grad_fn gave {name} a gradient of shape {tuple(f.shape)}, but {name} has shape {tuple(t.shape)}", "grad_fn")
        scale = max(g.abs().max().item(), f.abs().max().item()) if g.numel() else 0.0
        abs_err = (f - g).abs().max().item() if g.numel() else 0.0
        gg = (g * g).sum().item()
        ratio = (f * g).sum().item() / gg if gg else None
        if abs_err <= 1e-9 + 1e-5 * scale:
            verdict = "matches autograd"
        elif ratio and (f - ratio * g).norm().item() <= 1e-5 * f.norm().item():
            verdict = f"≈{format_number(ratio, 4)}× autograd"
        else:
            verdict = "differs from autograd"
        out.append(GradFnCheck(name, abs_err, abs_err / scale if scale else 0.0, ratio, verdict))
    return tuple(out)
