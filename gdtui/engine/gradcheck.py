"""Checking gradients against finite differences, on a float64 copy of the scenario.

A gradient says how much the loss changes when one number of a parameter
moves a little. That can be measured without calculus: move the number by a
small ``h`` up and down, evaluate the loss both times, and divide the
difference by ``2h`` (a *central finite difference*). If autograd, or a
hand-written ``grad_fn``, disagrees with that measurement, the gradient is
wrong.

The check leaves the session as it was: it loads a fresh copy of the scenario
file, gives it the session's current parameter values, converts it to float64
(so the measurement is precise), and evaluates the loss there on the batch the
session is on. To see the next batch of a DataLoader it takes it from the
session's data stream and seeks back, as a rewind does. The global RNGs, the
data position and the scenario module are put back as they were.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from gdtui.engine.errors import ScenarioError, error_from
from gdtui.engine.scenario import MODULE_NAME, Scenario, load_scenario
from gdtui.engine.snapshot import RngState
from gdtui.engine.summarize import format_number

#: Entries of a tensor this small are all checked.
SMALL = 32


@dataclass(frozen=True)
class TensorCheck:
    """Autograd against finite differences for one trained tensor.

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
    dtype: str  # the dtype the copy's loss came out in (float64 unless something stayed float32)
    loss: float
    tensors: tuple[TensorCheck, ...]
    grad_fn: tuple[GradFnCheck, ...]
    notes: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """True when autograd passes (kinks allowed) and grad_fn, if any, matches it."""
        return all(t.verdict != "mismatch" for t in self.tensors) and all(
            g.verdict == "matches autograd" for g in self.grad_fn
        )

    def lines(self) -> list[str]:
        """Short text for headless output."""
        out = [
            f"gradient check after step {self.step} (next: {self.next_phase}), on {self.batch}, "
            f"in {self.dtype}: loss {format_number(self.loss, 8)}"
        ]
        width = max((len(t.name) for t in self.tensors), default=0)
        for t in self.tensors:
            kink = f", {t.kinks} at a kink" if t.kinks else ""
            out.append(
                f"  {t.name:<{width}}  {t.checked}/{t.numel} entries  max abs err {_sci(t.max_abs_error)}  "
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


# --- the copy ---------------------------------------------------------------------------


def _tensor_ids(values: Any) -> set[int]:
    """ids of the tensors among ``values`` and of every Module's parameters and buffers."""
    ids: set[int] = set()
    for value in values:
        if isinstance(value, nn.Module):
            ids.update(id(t) for t in value.parameters())
            ids.update(id(t) for t in value.buffers())
            ids.add(id(value))
        elif isinstance(value, torch.Tensor):
            ids.add(id(value))
    return ids


def _to_float64(sc: Scenario, live: set[int]) -> bool:
    """Convert the copy's float tensors to float64 in place (``t.data = …`` keeps identity,
    so closures, Modules and the optimizer still see the same objects).

    Objects the live session also holds (a tensor imported from a helper module
    is the same object in both loads) are left alone; returns whether any was.
    """
    seen: set[int] = set()
    skipped = False
    for value in [*sc.params.values(), sc.model, *sc.namespace.values()]:
        if id(value) in seen or not isinstance(value, (nn.Module, torch.Tensor)):
            continue
        seen.add(id(value))
        if _tensor_ids([value]) & live:
            skipped = True
        elif isinstance(value, nn.Module):
            value.double()
        elif value.is_floating_point() and value.dtype != torch.float64:
            try:
                value.data = value.data.double()
            except RuntimeError:
                skipped = True  # type promotion will still see the float64 ones
    return skipped


def _load_copy(session: Any) -> tuple[Scenario, bool]:
    """A fresh float64 copy of the scenario holding the session's current values, and whether
    some of its tensors had to stay in their dtype (shared with the session)."""
    live = session.loop
    copy = load_scenario(session.path, seed=session.seed, device=live.sc.device, file=session.file,
                         args=session.scenario_args)
    changed = None
    if list(copy.params) != live.names:
        changed = f"it now trains {', '.join(copy.params)}, the session trains {', '.join(live.names)}"
    else:
        for name, t in zip(live.names, live.tensors):
            if copy.params[name].shape != t.shape:
                changed = f"{name} is now {tuple(copy.params[name].shape)}, in the session {tuple(t.shape)}"
                break
    if changed is None and [b.shape for b in copy.buffers] != [b.shape for b in live.buffers]:
        changed = "the model's buffers changed"
    if changed:
        raise ScenarioError(f"the scenario file changed since the session loaded it ({changed}); reset first", session.path)
    live_ids = _tensor_ids([*live.sc.namespace.values(), live.sc.model, *live.tensors, *live.buffers])
    if _tensor_ids([*copy.params.values(), *copy.buffers]) & live_ids:
        raise ScenarioError(
            "the gradient check needs its own copy of the trained tensors, but loading the file again gave the "
            "session's own (are they made in an imported module?); create them in the scenario file",
            session.path,
        )
    skipped = _to_float64(copy, live_ids)
    with torch.no_grad():
        for name, t in zip(live.names, live.tensors):
            copy.params[name].copy_(t.detach())
        for mine, theirs in zip(copy.buffers, live.buffers):
            if mine.is_floating_point():
                mine.copy_(theirs.detach())
    return copy, skipped


def _as64(v: Any) -> Any:
    return v.double() if isinstance(v, torch.Tensor) and v.is_floating_point() else v


def _batch(session: Any, rng: RngState) -> tuple[Any, Any, str, RngState | None]:
    """The batch to check on, its description, and the RNG state the step's forward starts
    from (None for a step in progress, whose forward already drew its random numbers)."""
    loop, sc = session.loop, session.loop.sc
    n = session.step_count + 1
    if sc.objective is not None:
        return None, None, "the objective loss()", rng
    if loop.inputs is not None:
        where = "the full batch" if loop.stream is None else f"step {n}'s batch (epoch {loop.epoch}, batch {loop.batch})"
        return loop.inputs, loop.targets, where, None
    if loop.stream is None:
        x, y = sc.full_batch
        return x, y, "the full batch", rng
    # The next batch: take it from the session's stream, then seek back, as a rewind does.
    stream = loop.stream
    pos = stream.position()
    try:
        item, epoch, batch = stream.next()
        after = RngState.capture(stream.generators)
    except Exception as exc:  # noqa: BLE001 - the user's data raised
        raise error_from(exc, sc.path, "fetching the next batch from data", sc.line("data")) from None
    finally:
        stream.seek(pos)
        rng.restore()
    x, y = (v.to(sc.device) if isinstance(v, torch.Tensor) else v for v in item)
    return x, y, f"the next batch, step {n}'s (epoch {epoch}, batch {batch})", after


def gradient_check(session: Any, *, max_entries: int = 16, seed: int = 0) -> GradCheckReport:
    """Compare autograd (and grad_fn) with central finite differences at the current parameters.

    Each checked entry p_i is moved to p_i ± h with h = ε^(1/3)·max(1, |p_i|),
    ε the loss dtype's machine epsilon (6e-6 in float64): the difference quotient
    errs by about h²·f'''/6 (truncation) plus ε·|loss|/h (rounding), and this h
    balances the two. The RNG is restored before every loss evaluation, so
    dropout-like randomness is the same each time.

    A ReLU (or abs, clamp, max) has a corner, a *kink*: the derivative jumps.
    When p_i ± h straddles one, the central difference averages the two sides
    and matches neither; autograd gives the one-sided derivative of the side
    the point is on. An entry whose autograd value matches the forward or the
    backward one-sided difference, while those two disagree, is counted "at a
    kink" rather than a mismatch.

    Tensors of at most 32 entries are checked entry by entry; larger ones at
    ``max_entries`` entries drawn with a private ``torch.Generator(seed)``.
    """
    live = session.loop
    rng = live.capture_rng()
    module = sys.modules.get(MODULE_NAME)
    try:
        inputs, targets, where, forward_rng = _batch(session, rng)
        copy, skipped = _load_copy(session)
        probe = _Probe(copy, _as64(inputs), _as64(targets), forward_rng or rng)
        report = _check(session, copy, probe, where, forward_rng is None, max_entries, seed)
        if skipped:
            note = "some tensors are shared with the session (imported from another module) and kept their dtype"
            report = dataclasses.replace(report, notes=report.notes + (note,))
        return report
    finally:
        rng.restore()
        if module is not None:
            sys.modules[MODULE_NAME] = module
        else:
            sys.modules.pop(MODULE_NAME, None)


class _Probe:
    """Loss evaluations on the float64 copy, each from the same RNG state and buffers."""

    def __init__(self, sc: Scenario, inputs: Any, targets: Any, rng: RngState):
        self.sc, self.inputs, self.targets, self.rng = sc, inputs, targets, rng
        self.buffers = [b.detach().clone() for b in sc.buffers]

    def run(self, fn: Any, *args: Any, doing: str) -> Any:
        try:
            if self.sc.device.type == "cpu":
                return fn(*args)
            with torch.device(self.sc.device):
                return fn(*args)
        except Exception as exc:  # noqa: BLE001 - the user's code raised
            raise error_from(exc, self.sc.path, f"gradient check: {doing}") from None

    def loss(self) -> torch.Tensor:
        self.rng.restore()
        with torch.no_grad():
            for b, saved in zip(self.sc.buffers, self.buffers):
                b.copy_(saved)
        if self.sc.objective is not None:
            return self.run(self.sc.objective, doing="loss()")
        return self.run(self.sc.loss_fn, self.run(self.sc.model, self.inputs, doing="model"), self.targets, doing="loss_fn")

    def value(self) -> float:
        with torch.no_grad():
            return self.loss().item()


def _check(session, sc: Scenario, probe: _Probe, where: str, in_progress: bool,
           max_entries: int, seed: int) -> GradCheckReport:
    tensors = list(sc.params.values())
    loss = probe.loss()
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
    for name, t, g in zip(sc.params, tensors, grads):
        n = t.numel()
        flat = list(range(n)) if n <= SMALL else sorted(torch.randperm(n, generator=gen)[:max_entries].tolist())
        if n > SMALL:
            notes.append(f"{name}: {len(flat)} of its {n} entries checked, drawn with seed {seed}")
        checks.append(_check_tensor(name, t, g, flat, probe, loss.item(), torch.finfo(loss.dtype).eps))
    dtype = str(loss.dtype).removeprefix("torch.")
    return GradCheckReport(str(session.path), session.step_count, session.next_phase, where, dtype, loss.item(),
                           tuple(checks), tuple(fn_checks), tuple(notes))


def _check_tensor(name: str, t: torch.Tensor, g: torch.Tensor, flat: list[int], probe: _Probe,
                  l0: float, eps: float) -> TensorCheck:
    """Central differences at the entries ``flat`` of ``t`` (flat indices), against autograd's ``g``."""
    values = t.detach().reshape(-1)[flat].tolist() if flat else []
    auto = g.reshape(-1)[flat].tolist() if flat else []
    rtol = max(1e-5, 1e3 * eps ** (2 / 3))
    max_abs, max_rel, worst, kinks, bad = 0.0, 0.0, None, 0, False
    for i, p, a in zip(flat, values, auto):
        idx = tuple(int(k) for k in torch.unravel_index(torch.tensor(i), t.shape)) if t.dim() else ()
        h = eps ** (1 / 3) * max(1.0, abs(p))
        up, down = p + h, p - h
        with torch.no_grad():
            t[idx] = up
            lp = probe.value()
            t[idx] = down
            lm = probe.value()
            t[idx] = p
        fd = (lp - lm) / (up - down)
        noise = 100 * eps * max(1.0, abs(l0)) / h  # what rounding alone can make the quotient be

        def close(u: float, v: float) -> bool:
            return abs(u - v) <= noise + rtol * max(abs(u), abs(v))

        if not close(a, fd):
            fwd, bwd = (lp - l0) / (up - p), (l0 - lm) / (p - down)
            if (close(a, fwd) or close(a, bwd)) and not close(fwd, bwd):
                kinks += 1
                continue
            bad = True
        err = abs(a - fd)
        rel = err / max(abs(a), abs(fd), noise)
        if worst is None or rel > max_rel:
            worst = idx
        max_abs, max_rel = max(max_abs, err), max(max_rel, rel)
    verdict = "mismatch" if bad else ("at a kink" if kinks else "ok")
    return TensorCheck(name, tuple(t.shape), len(flat), t.numel(), max_abs, max_rel, kinks, worst, verdict)


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
