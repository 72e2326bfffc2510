"""The five phases of one training step, run on a loaded scenario.

:class:`Loop` is the plain PyTorch loop of the seed notebooks cut at its phase
boundaries: forward, loss, backward, update, zero_grad. It holds the live
tensors of the step in progress; :class:`gdtui.engine.session.Session` decides
what to run and keeps the history.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import torch

from gdtui.engine.errors import ScenarioError, StepError, a_type, error_from, stops_the_run
from gdtui.engine.health import DeadUnitWatch
from gdtui.engine.nonfinite import OriginProbe
from gdtui.engine.scenario import Scenario
from gdtui.engine.scenario_state import _SAME_WIDTH_INT, ScenarioState
from gdtui.engine.snapshot import NO_SPARES, BatchStream, RngState, Snapshot, Spares, tensor_nbytes
from gdtui.engine.summarize import summarize

_PLAIN_SGD = {"momentum": 0, "dampening": 0, "weight_decay": 0, "nesterov": False, "maximize": False}


def manual_mode_note(optimizer: torch.optim.Optimizer) -> str | None:
    """Why manual mode (vanilla SGD) differs from this optimizer's step, or None when it does not."""
    name = type(optimizer).__name__
    if isinstance(optimizer, torch.optim.SGD):
        group = optimizer.param_groups[0]
        extra = [f"{k}={group.get(k)}" for k, v in _PLAIN_SGD.items() if group.get(k, v) != v]
        if not extra:
            return None
        return f"manual mode is vanilla SGD: it ignores SGD's {', '.join(extra)}"
    return f"manual mode is vanilla SGD (p -= lr * p.grad): it ignores {name}'s own update rule and state"


class Loop:
    """One scenario's live objects and the code of each phase."""

    def __init__(self, scenario: Scenario, watch_activations: bool = False):
        self.sc = scenario
        self.names: list[str] = list(scenario.params)
        self.tensors: list[torch.Tensor] = list(scenario.params.values())
        self.buffers: list[torch.Tensor] = scenario.buffers
        self.optimizer = scenario.optimizer
        self.scheduler = scenario.scheduler
        self.stream = BatchStream(scenario.batches) if scenario.batches is not None else None
        self.groups: list[list[int]] = self._group_indices()
        #: What the scenario keeps in its namespace besides these: saved and restored with each snapshot.
        self.state = ScenarioState(
            scenario.namespace, self.tensors + self.buffers, self.optimizer,
            scenario.namespace.get("data") if scenario.batches is not None or scenario.full_batch is not None else None,
        )
        self.watch = DeadUnitWatch(scenario.model) if watch_activations and scenario.model is not None else None
        self.clear()

    def _group_indices(self) -> list[list[int]]:
        index = {id(t): i for i, t in enumerate(self.tensors)}
        return [[index[id(p)] for p in g["params"]] for g in self.optimizer.param_groups]

    def clear(self) -> None:
        """Forget the step in progress."""
        self.inputs: Any = None
        self.targets: Any = None
        self.pred: Any = None
        self.loss: torch.Tensor | None = None
        self.metric_values: list[Any] = []
        self.epoch: int | None = None
        self.batch: int | None = None

    # --- the phases ---------------------------------------------------------------------

    def forward(self, step: int) -> None:
        sc = self.sc
        if sc.objective is not None:
            return
        if self.stream is not None:
            try:
                item, self.epoch, self.batch = self.stream.next()
            except BaseException as exc:  # noqa: BLE001 - the user's data raised
                if stops_the_run(exc):
                    raise
                raise StepError(error_from(exc, sc.path, "fetching the next batch from data", sc.line("data"))) from None
            if self.batch == 1 and self.epoch > 1:
                self._new_epoch()
            if not (isinstance(item, (tuple, list)) and len(item) == 2):
                raise StepError(sc.error(
                    f"data yielded {a_type(item)} as a batch; each batch must be (inputs, targets)", "data"
                ))
            if any(isinstance(v, torch.Tensor) and v.is_meta for v in item):
                raise StepError(sc.error("data yielded a batch on the meta device, which holds shapes but no values; "
                                         "yield tensors with values", "data"))
            self.inputs, self.targets = (v.to(sc.device) if isinstance(v, torch.Tensor) else v for v in item)
        else:
            self.inputs, self.targets = sc.full_batch
            self.epoch, self.batch = step, 1
        if self.watch is None:
            self.pred = self._call(sc.model, (self.inputs,), "model", "model")
            return
        self.watch.start()
        with self.watch:
            self.pred = self._call(sc.model, (self.inputs,), "model", "model")
        if not self.watch.saw_relu:
            # No unit to die: stop watching, since the watch sees every torch call of the
            # forward, which costs a small model's step a good part of its time. A model whose later
            # forwards start calling a ReLU is not watched; a reset watches it again.
            self.watch.close()
            self.watch = None

    def compute_loss(self) -> None:
        sc = self.sc
        if sc.objective is not None:
            loss = self._call(sc.objective, (), "loss()", "loss")
            who = "loss()"
        else:
            loss = self._call(sc.loss_fn, (self.pred, self.targets), "loss_fn", "loss_fn")
            who = "loss_fn"
        if not isinstance(loss, torch.Tensor):
            raise StepError(sc.error(
                f"{who} returned {a_type(loss)}, not a tensor; return a scalar tensor built from the trained tensors",
                "loss_fn", "loss",
            ))
        if loss.numel() != 1:
            raise StepError(sc.error(
                f"{who} returned a tensor of shape {tuple(loss.shape)}; the loss must be a scalar (try .mean())",
                "loss_fn", "loss",
            ))
        if loss.is_complex():
            raise StepError(sc.error(
                f"{who} returned a complex loss ({str(loss.dtype).removeprefix('torch.')}); gradient descent needs a "
                "real one: return its .abs() ** 2 or its .real",
                "loss_fn", "loss",
            ))
        if not loss.requires_grad:
            raise StepError(sc.error(
                f"{who} returned a tensor with no grad (it does not depend on any trained tensor); "
                "build it from the model's output without .detach(), .item() or torch.no_grad()",
                "loss_fn", "loss",
            ))
        self.loss = loss
        if sc.metrics:
            with torch.no_grad():
                self.metric_values = [
                    self._call(fn, (self.pred, self.targets), f"metric {name!r}", "metrics") for name, fn in sc.metrics.items()
                ]

    def backward(self, grad_source: str) -> None:
        if grad_source == "grad_fn":
            self._apply_grad_fn()
            return
        try:
            self.loss.backward()
        except BaseException as exc:  # noqa: BLE001 - a hook of the scenario's raised
            if stops_the_run(exc):
                raise
            raise StepError(error_from(exc, self.sc.path, "loss.backward()", self.sc.line("loss_fn", "loss"))) from None

    def _apply_grad_fn(self) -> None:
        sc = self.sc
        got = self._call(sc.grad_fn, (), "grad_fn", "grad_fn")
        if isinstance(got, dict):
            missing = [n for n in self.names if n not in got]
            if missing:
                raise StepError(sc.error(f"grad_fn returned no gradient for {', '.join(missing)}; return one per trained tensor", "grad_fn"))
            grads = [got[n] for n in self.names]
        elif isinstance(got, (tuple, list)) and len(got) == len(self.names):
            grads = list(got)
        else:
            raise StepError(sc.error(
                f"grad_fn returned {a_type(got)}; return a dict name -> tensor, or a tuple of {len(self.names)} in params order",
                "grad_fn",
            ))
        with torch.no_grad():
            for name, p, g in zip(self.names, self.tensors, grads):
                g = torch.as_tensor(g, dtype=p.dtype, device=p.device)
                if g.shape != p.shape:
                    raise StepError(sc.error(f"grad_fn gave {name} a gradient of shape {tuple(g.shape)}, but {name} has shape {tuple(p.shape)}", "grad_fn"))
                if p.grad is None:
                    p.grad = g.detach().clone()
                else:
                    p.grad += g

    def write_lrs(self, lrs: Sequence[float] | None) -> None:
        """Put the user's learning rates into the param groups (None: leave the scenario's)."""
        if lrs is not None:
            for group, lr in zip(self.optimizer.param_groups, lrs):
                group["lr"] = lr

    def update(self, mode: str, lrs: Sequence[float]) -> None:
        """optimizer.step() with the param groups' own lrs, or manual p -= lr * p.grad with ``lrs``."""
        if mode == "optim":
            try:
                self.optimizer.step()
            except BaseException as exc:  # noqa: BLE001 - the scenario's optimizer, or a hook of it, raised
                if stops_the_run(exc):
                    raise
                raise StepError(error_from(exc, self.sc.path, "optimizer.step()", self.sc.line("optimizer"))) from None
            return
        with torch.no_grad():
            for indices, lr in zip(self.groups, lrs):
                for i in indices:
                    p = self.tensors[i]
                    if p.grad is not None:
                        p -= lr * p.grad

    def scheduler_mark(self) -> int | None:
        """The scheduler's last_epoch at the start of a step: whether the scenario steps it itself."""
        return None if self.scheduler is None else self.scheduler.last_epoch

    def after_update(self, mark: int | None) -> None:
        """Step the scenario's scheduler after an update, as a plain loop would: every step, or
        after the last batch of an epoch with ``scheduler_interval = "epoch"``. Not when the
        scenario stepped it itself during this step (its last_epoch moved since ``mark``)."""
        if self.scheduler is None or self.scheduler.last_epoch != mark:
            return
        if self.sc.scheduler_interval == "epoch" and not self._epoch_ends():
            return
        self._step_scheduler()

    def _epoch_ends(self) -> bool:
        """Whether the step in progress took the last batch of its epoch. A full batch (or an
        objective) is one batch an epoch. Data with no len() says so only when the next epoch
        begins: forward steps the scheduler then (see _new_epoch)."""
        if self.stream is None:
            return True
        length = self.stream.length
        return length is not None and self.stream.index >= length

    def _new_epoch(self) -> None:
        """A new epoch began on data with no len(): step an epoch scheduler for the one that ended."""
        if self.scheduler is not None and self.sc.scheduler_interval == "epoch" and self.stream.length is None:
            self._step_scheduler()

    def _step_scheduler(self) -> None:
        try:
            with warnings.catch_warnings():
                # Manual mode never calls optimizer.step(), which the scheduler warns about.
                warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler.step\(\)` before")
                self.scheduler.step()
        except Exception as exc:  # noqa: BLE001 - the scenario's scheduler raised
            raise StepError(error_from(exc, self.sc.path, "scheduler.step()", self.sc.line("scheduler"))) from None

    def zero_grad(self, mode: str, skip: bool = False) -> None:
        if skip:
            return
        if mode == "optim":
            self.optimizer.zero_grad()
            return
        for p in self.tensors:
            if p.grad is not None:
                p.grad.zero_()

    # --- helpers ------------------------------------------------------------------------

    def _call(self, fn: Any, args: tuple[Any, ...], doing: str, name: str) -> Any:
        try:
            if self.sc.device.type == "cpu":
                return fn(*args)
            with torch.device(self.sc.device):
                return fn(*args)
        except StepError:
            raise
        except SystemExit:
            raise StepError(self.sc.error(f"{doing} called sys.exit(); remove it", name)) from None
        except BaseException as exc:  # noqa: BLE001 - any failure of user code is reported, not raised
            if stops_the_run(exc):
                raise
            raise StepError(error_from(exc, self.sc.path, doing, self.sc.line(name))) from None

    def capture_rng(self) -> RngState:
        """Every RNG this scenario can draw from: the global ones and its DataLoader's generators."""
        return RngState.capture(self.stream.generators if self.stream else ())

    def snapshot(self, grads_known_zero: bool, previous: Snapshot | None = None, spares: Spares = NO_SPARES) -> Snapshot:
        return Snapshot.capture(
            self.tensors, self.buffers, self.optimizer, self.stream, grads_known_zero, previous, spares, self.state
        )

    def snapshot_nbytes(self, grads_known_zero: bool) -> int:
        """About how many bytes of tensors a snapshot now would hold (its RNG states and records aside)."""
        size = tensor_nbytes(self.tensors + self.buffers) + tensor_nbytes(list(self.optimizer.state.values()))
        size += self.state.nbytes_estimate()
        if not grads_known_zero:
            size += tensor_nbytes([t.grad for t in self.tensors])
        return size

    def checksum(self) -> tuple[int, ...]:
        """The bits of every trained tensor and buffer, summed as integers: a state run again to the
        same bits gives the same sums, and one that differs in any bit almost surely does not."""
        sums = [_bit_sum(t) for t in self.tensors + self.buffers]
        return tuple(int(s) for s in sums)

    def finite(self) -> bool:
        """Whether the parameters, their gradients and the optimizer's state hold no NaN or Inf:
        one pass over each (a step's own check reads the parameters and gradients only)."""
        state = [v for entry in self.optimizer.state.values() for v in entry.values() if isinstance(v, torch.Tensor)]
        views = summarize(self.tensors + [t.grad for t in self.tensors] + state, 0, large="finite")
        return all(v is None or v.finite for v in views)

    def restore(self, snap: Snapshot) -> None:
        snap.restore(self.tensors, self.buffers, self.optimizer, self.stream, self.state)
        self.clear()

    #: What the step in progress holds between its phases.
    _STEP_STATE = ("inputs", "targets", "pred", "loss", "metric_values", "epoch", "batch")

    @contextlib.contextmanager
    def trial(self, step: int, grad_source: str, zero_grad_mode: str | None = None) -> Iterator[None]:
        """Run a step's forward, loss and backward on a snapshot, then put everything back.

        Inside the ``with`` the trial's predictions, loss and gradients are live.
        Afterwards the parameters, grads, optimizer state, RNGs, data position and
        the step in progress are as they were. ``zero_grad_mode`` zeroes the grads
        first: a trial of the next step, taken after this step's update.
        Raises StepError when the scenario's code fails.
        """
        saved = {k: getattr(self, k) for k in self._STEP_STATE}
        snap = self.snapshot(grads_known_zero=False)
        try:
            if zero_grad_mode is not None:
                self.zero_grad(zero_grad_mode)
            self.forward(step)
            self.compute_loss()
            self.backward(grad_source)
            yield
        finally:
            self.restore(snap)
            for k, v in saved.items():
                setattr(self, k, v)

    def origin_probe(self) -> OriginProbe:
        """A probe for where a NaN/Inf began, to put on while a step runs again (see OriginProbe)."""
        return OriginProbe(self.sc.model, dict(zip(self.names, self.tensors)), self.sc.path)

    def grad_copies(self) -> list[torch.Tensor | None]:
        return [None if p.grad is None else p.grad.detach().clone() for p in self.tensors]

    def check(self) -> None:
        """Run forward, loss and backward once, check what they give, and undo them.

        Raises ScenarioError for a loss that is not a differentiable scalar, an
        optimizer tensor the loss does not use, or a broken grad_fn or metric.
        """
        try:
            with self.trial(1, "autograd"):
                unused = [n for n, p in zip(self.names, self.tensors) if p.grad is None]
                if unused:
                    raise ScenarioError(
                        f"the optimizer holds {', '.join(unused)} but the loss does not use "
                        f"{'it' if len(unused) == 1 else 'them'}; remove it from the optimizer or use it in the model",
                        self.sc.path,
                        self.sc.line("optimizer", "params"),
                    )
                sparse = [n for n, p in zip(self.names, self.tensors) if p.grad is not None and p.grad.layout != torch.strided]
                if sparse:
                    raise self.sc.error(
                        f"{', '.join(sparse)} {'gets' if len(sparse) == 1 else 'get'} sparse gradients "
                        "(nn.Embedding(sparse=True) makes them); gdtui steps dense gradients only: use sparse=False",
                        "model", "loss",
                    )
                if self.sc.grad_fn is not None:
                    self.backward("grad_fn")
                for value, name in zip(self.metric_values, self.sc.metrics):
                    if not _is_number(value):
                        raise self.sc.error(f"metric {name!r} returned {a_type(value)}; return a number", "metrics")
        except StepError as exc:
            raise exc.error from None


def _bit_sum(t: torch.Tensor) -> torch.Tensor:
    """The sum of ``t``'s elements read as integers of its width (int64, wrapping): exact, so any
    order of summation gives the same result."""
    t = t.detach()
    if t.layout != torch.strided:
        t = t.to_dense()
    if t.is_complex():
        t = torch.view_as_real(t)
    if t.dtype == torch.bool:
        t = t.to(torch.uint8)
    if t.is_floating_point():
        t = t.contiguous().view(_SAME_WIDTH_INT[t.element_size()])
    return t.sum(dtype=torch.int64)


def _is_number(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return value.numel() == 1
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True
