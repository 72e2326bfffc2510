"""The gradient check's loss evaluations: float64 working copies in place, and the probe.

:mod:`gdtui.engine.gradcheck` decides what to measure and what the measurements
mean (the report and its verdicts); this module evaluates the loss for it. It
gives every tensor the loss can reach a float64 working copy in place and puts
the tensor's own data back afterwards (:class:`_InPlace`), finds the batch to
evaluate on, and evaluates the loss at perturbed values of one tensor, in one
vmap batch where it can (:class:`_Probe`). Where the loss uses a float32 tensor
it cannot reach, :func:`_load_copy` loads the file again as float64.
"""

from __future__ import annotations

import ast
import traceback
import types
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

from gdtui.engine.errors import ScenarioError, error_from, one_line
from gdtui.engine.scenario import Scenario, load_scenario, read_source
from gdtui.engine.snapshot import RngState

#: The perturbed copies of one tensor evaluated in one batch (torch.func.vmap) take at most this.
BATCH_BYTES = 256 * 2**20
#: Floating dtypes the check reads as float64.
_LOW = (torch.float32, torch.float16, torch.bfloat16)


class CheckCancelled(Exception):
    """The user cancelled the check (``escape`` in the app); the session is as it was."""


# --- float64 in place, on the session's objects --------------------------------------------


def _reachable(sc: Scenario, loop: Any) -> list[torch.Tensor]:
    """Every tensor the loss can use that gdtui can find: trained tensors, buffers, the tensors
    and modules of the namespace (in lists, tuples and dicts too) and of the closures of its
    functions. The tensors of a DataLoader's dataset are not among them: the check copies the batch."""
    out: list[torch.Tensor] = []
    seen: set[int] = set()

    def add(t: torch.Tensor) -> None:
        if id(t) not in seen:
            seen.add(id(t))
            out.append(t)

    def visit(value: Any, depth: int) -> None:
        if depth > 4 or id(value) in seen:
            return
        if isinstance(value, torch.Tensor):
            add(value)
            return
        seen.add(id(value))
        if isinstance(value, nn.Module):
            for sub in value.modules():
                for t in [*sub.parameters(recurse=False), *sub.buffers(recurse=False)]:
                    add(t)
                for name, attr in vars(sub).items():
                    if not name.startswith("_") and isinstance(attr, torch.Tensor):
                        add(attr)
        elif isinstance(value, torch.optim.Optimizer):
            for group in value.param_groups:
                for p in group["params"]:
                    add(p)
        elif isinstance(value, (list, tuple, dict)) and len(value) <= 10_000:
            for item in value.values() if isinstance(value, dict) else value:
                visit(item, depth + 1)
        elif isinstance(value, types.FunctionType) and value.__closure__:
            for cell in value.__closure__:
                try:
                    visit(cell.cell_contents, depth + 1)
                except ValueError:  # an empty cell
                    pass

    for t in [*loop.tensors, *loop.buffers]:
        add(t)
    for value in [sc.model, sc.loss_fn, sc.objective, sc.grad_fn]:
        if value is not None:
            visit(value, 0)
    for name, value in list(sc.namespace.items()):
        if not name.startswith("__"):
            visit(value, 0)
    return out


def _working_bytes(tensors: list[torch.Tensor]) -> int:
    return sum(t.numel() * (8 if t.is_floating_point() else t.element_size()) for t in tensors
               if not (t.is_sparse or t.is_meta or t.is_complex()))


class _InPlace:
    """Gives each tensor a working copy of its data (float64 for a float one) in place, and its own
    data back on exit: the original storage is never written, so it comes back bit for bit.

    The check writes (perturbs, resets) through the working copies, never through the session's
    tensors, whose version counters stay as they were: a step in progress can still backward.
    """

    def __init__(self, tensors: list[torch.Tensor]):
        self.tensors = tensors
        self.swapped: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.work: dict[int, torch.Tensor] = {}

    def __enter__(self) -> _InPlace:  # noqa: PYI034 - a private class, never subclassed
        try:
            for t in self.tensors:
                if t.is_sparse or t.is_meta or t.is_complex():
                    continue
                work = t.detach().to(torch.float64, copy=True) if t.is_floating_point() else t.detach().clone()
                try:
                    original = t.data
                    t.data = work
                except RuntimeError:
                    continue  # cannot be retyped in place; a float32 one the loss uses is noticed by _Watch
                self.swapped.append((t, original))
                self.work[id(t)] = work
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        while self.swapped:
            t, original = self.swapped.pop()
            t.data = original
        self.work.clear()


class _NotReachable(Exception):
    """The loss used a float32 tensor that gdtui could not find to convert."""


class _Watch(TorchFunctionMode):
    """While the loss is evaluated: reads a ``dtype=float32`` argument as float64, and notes which
    scenario line made a float32 tensor and whether a float32 tensor from outside the forward
    (one gdtui did not convert) was used."""

    def __init__(self, path: str):
        super().__init__()
        self.path = path
        self.low: dict[int, torch.Tensor] = {}  # float32 tensors made during the evaluation
        self.made_at: int | None = None  # the scenario line that made the first one from float64 inputs
        self.foreign_at: int | None = None  # the line that used a float32 tensor made before it
        self.retyped: set[int] = set()  # lines whose dtype=float32 was read as float64

    def _line(self) -> int | None:
        line = None
        for frame in traceback.extract_stack():
            if frame.filename == self.path:
                line = frame.lineno
        return line

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if kwargs.get("dtype") in _LOW:
            kwargs = {**kwargs, "dtype": torch.float64}
            line = self._line()
            if line is not None:
                self.retyped.add(line)
        inputs = [a for a in tree_flatten((args, kwargs))[0] if isinstance(a, torch.Tensor)]
        low_in = [a for a in inputs if a.dtype in _LOW]
        if self.foreign_at is None and any(id(a) not in self.low for a in low_in):
            self.foreign_at = self._line() or 0
        out = func(*args, **kwargs)
        for o in tree_flatten(out)[0]:
            if isinstance(o, torch.Tensor) and o.dtype in _LOW:
                self.low[id(o)] = o
                if not low_in and self.made_at is None:
                    self.made_at = self._line()
        return out


def _changed_on_disk(session: Any) -> bool:
    """Whether the file's code differs from the code the session loaded (comments aside)."""
    tree = session.loop.sc.tree
    try:
        now = ast.parse(read_source(session.file))
    except (OSError, SyntaxError, ValueError):
        return True
    return tree is None or ast.dump(now) != ast.dump(tree)


# --- a fresh load of the file, where the session's objects cannot be used --------------------


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


def _load_copy(session: Any) -> Scenario:
    """A fresh load of the file, made with float64 as the default dtype, holding the session's
    current values. Raises ScenarioError when its tensors no longer fit the session's."""
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
    with torch.no_grad():
        for name, t in zip(live.names, live.tensors):
            copy.params[name].data = t.detach().to(torch.float64, copy=True)
        for mine, theirs in zip(copy.buffers, live.buffers):
            mine.data = theirs.detach().to(torch.float64 if theirs.is_floating_point() else theirs.dtype, copy=True)
    return copy


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


def _is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and any(
        s in text for s in ("out of memory", "not enough memory", "can't allocate memory", "failed to allocate"))


class _Probe:
    """Loss evaluations in float64, each from the same RNG state, buffers and namespace names.

    ``strict``: a float32 tensor the loss uses that was made before it (one the
    conversion did not reach) raises _NotReachable, so the caller can fall back
    to a fresh load.
    """

    def __init__(self, sc: Scenario, inputs: Any, targets: Any, rng: RngState, bindings: dict[str, Any],
                 cancelled: Callable[[], bool] | None, work: dict[int, torch.Tensor], strict: bool = True):
        self.sc, self.inputs, self.targets, self.rng = sc, inputs, targets, rng
        self.bindings = bindings
        self.cancelled = cancelled
        self.strict = strict
        self.path = str(sc.path)
        self.work = work  # where to write each converted tensor: its working copy
        self.buffers = [(self.writable(b), b.detach().clone()) for b in sc.buffers]
        self.retyped: set[int] = set()
        self.batched: bool | None = None  # None: not tried yet
        self._names = ({id(p): n for n, p in sc.model.named_parameters(remove_duplicate=False)}
                       if isinstance(sc.model, nn.Module) else {})

    def run(self, fn: Any, *args: Any, doing: str) -> Any:
        try:
            if self.sc.device.type == "cpu":
                return fn(*args)
            with torch.device(self.sc.device):
                return fn(*args)
        except (KeyboardInterrupt, CheckCancelled, _NotReachable):
            raise
        except (RuntimeError, MemoryError) as exc:
            if _is_out_of_memory(exc):
                raise
            raise self._error(exc, doing) from None
        except Exception as exc:  # noqa: BLE001 - the user's code raised
            raise self._error(exc, doing) from None

    def _error(self, exc: BaseException, doing: str) -> ScenarioError:
        watch = self._watch
        if watch is not None and watch.made_at is not None:
            return ScenarioError(
                f"gradient check: this line makes a float32 tensor, which the float64 check cannot mix with its "
                f"float64 ones ({doing} then raised {type(exc).__name__}: {one_line(exc, 120)}); make it in the "
                "default dtype, or in its input's (x.to(other.dtype))", self.path, watch.made_at)
        if watch is not None and watch.foreign_at is not None and self.strict:
            raise _NotReachable(f"the loss uses a float32 tensor gdtui cannot reach (line {watch.foreign_at})")
        return error_from(exc, self.sc.path, f"gradient check: {doing}")

    def _prepare(self) -> None:
        if self.cancelled is not None and self.cancelled():
            raise CheckCancelled
        self.rng.restore()
        self.sc.namespace.update(self.bindings)
        with torch.no_grad():
            for b, saved in self.buffers:
                b.copy_(saved)

    _watch: _Watch | None = None

    def loss(self) -> torch.Tensor:
        self._prepare()
        self._watch = _Watch(self.path)
        with self._watch:
            if self.sc.objective is not None:
                out = self.run(self.sc.objective, doing="loss()")
            else:
                out = self.run(self.sc.loss_fn, self.run(self.sc.model, self.inputs, doing="model"), self.targets,
                               doing="loss_fn")
        self.retyped |= self._watch.retyped
        if self.strict and self._watch.foreign_at is not None and isinstance(out, torch.Tensor) and out.dtype != torch.float64:
            raise _NotReachable(f"the loss uses a float32 tensor gdtui cannot reach (line {self._watch.foreign_at})")
        return out

    def value(self) -> float:
        with torch.no_grad():
            return self.loss().item()

    # --- perturbed evaluations --------------------------------------------------------------

    def values(self, t: torch.Tensor, rows: list[tuple[int | None, float]], v: torch.Tensor | None) -> list[float]:
        """The loss with ``t`` perturbed as each row says: (flat index, the value it takes) or
        (None, d): t + d·v. ``t`` is back as it was afterwards."""
        if self.batched is not False and id(t) in self._names and self.sc.objective is None:
            try:
                out = self._batched(t, rows, v)
                self.batched = True
                return out
            except (KeyboardInterrupt, CheckCancelled):
                raise
            except Exception:  # noqa: BLE001 - vmap cannot run this model (dropout, an in-place buffer update…)
                self.batched = False
        return self._looped(t, rows, v)

    def writable(self, t: torch.Tensor) -> torch.Tensor:
        return self.work.get(id(t), t)

    def _looped(self, t: torch.Tensor, rows: list[tuple[int | None, float]], v: torch.Tensor | None) -> list[float]:
        saved = t.detach().clone()
        t = self.writable(t)
        flat = t.view(-1) if t.is_contiguous() else None
        out = []
        try:
            for i, x in rows:
                with torch.no_grad():
                    if i is None:
                        t.add_(v, alpha=x)
                    elif flat is not None:
                        flat[i] = x
                    else:
                        t[tuple(int(k) for k in torch.unravel_index(torch.tensor(i), t.shape))] = x
                out.append(self.value())
                with torch.no_grad():
                    t.copy_(saved)
        finally:
            with torch.no_grad():
                t.copy_(saved)
        return out

    def _batched(self, t: torch.Tensor, rows: list[tuple[int | None, float]], v: torch.Tensor | None) -> list[float]:
        from torch.func import functional_call, vmap

        name = self._names[id(t)]
        model, loss_fn, x, y = self.sc.model, self.sc.loss_fn, self.inputs, self.targets

        def loss_at(p: torch.Tensor) -> torch.Tensor:
            return loss_fn(functional_call(model, {name: p}, (x,)), y)

        chunk = max(1, BATCH_BYTES // max(1, t.numel() * t.element_size()))
        out: list[float] = []
        for start in range(0, len(rows), chunk):
            part = rows[start:start + chunk]
            self._prepare()
            with torch.no_grad():
                batch = t.detach().unsqueeze(0).repeat(len(part), *[1] * t.dim())
                flat = batch.view(len(part), -1)
                for b, (i, value) in enumerate(part):
                    if i is None:
                        batch[b] += value * v
                    else:
                        flat[b, i] = value
                with _Watch(self.path), warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # vmap's "no batching rule for …" is not the user's concern
                    if self.sc.device.type == "cpu":
                        losses = vmap(loss_at, randomness="error")(batch)
                    else:
                        with torch.device(self.sc.device):
                            losses = vmap(loss_at, randomness="error")(batch)
            if losses.dtype != torch.float64:
                raise TypeError("not float64")
            out += losses.reshape(-1).tolist()
        return out


