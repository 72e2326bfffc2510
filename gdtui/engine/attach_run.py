"""The headless attached run: ``gdtui train.py --headless [--steps N] [--trace FILE] -- ARGS``.

The script drives: it runs in this process's main thread (gdtui.engine.attach) and
:class:`HeadlessListener` turns each step the hooks report into a frozen StepRecord, writes
its trace line, prints its step line on stderr (the script's stdout stays its own) and yields
the runner's events (Stepped, then one Stopped) to ``on_event``. A stop (``--steps N``
reached, a stop condition, a NaN/Inf) raises :class:`StopScript`, a KeyboardInterrupt, in
the script right after that step's update, as Ctrl-C would: its ``finally`` blocks and
``atexit`` handlers run.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import torch

from gdtui.engine.attach import Hooks, ScriptStep, run_script
from gdtui.engine.conditions import Condition, RisingLoss, record_env
from gdtui.engine.errors import locate, one_line
from gdtui.engine.headless import EXIT_NONFINITE, EXIT_OK, LINE_VALUES, interrupted_status, step_line
from gdtui.engine.records import StepRecord, frozen_map
from gdtui.engine.runner import Stepped, Stopped
from gdtui.engine.scenario import seed_everything
from gdtui.engine.script_kind import defines_scenario  # noqa: F401 - the CLI reads it here
from gdtui.engine.summarize import summarize, unknown_view
from gdtui.engine.trace import TraceWriter

#: An uncaught exception in the script: python exits with 1 too.
EXIT_SCRIPT_FAILED = 1
#: Neither a training script nor a scenario.
EXIT_NEITHER = 2

class StopScript(KeyboardInterrupt):
    """gdtui stops the script at a step, as Ctrl-C would (``reason``: limit, condition, nonfinite)."""

    def __init__(self, reason: str, message: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.message = message


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


def _lr(step: ScriptStep) -> float:
    if step.optimizer is None or not step.optimizer.param_groups:
        return math.nan
    lr = step.optimizer.param_groups[0].get("lr", math.nan)
    return float(lr)


def step_record(step: ScriptStep, max_values: int, large: str = "full") -> StepRecord:
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
        step=step.step, epoch=None, batch=None, mode="optim" if step.kind == "optimizer" else "manual",
        grad_source="autograd", lr=_lr(step), loss=step.loss,
        params=frozen_map(dict(zip(names, params))),
        grads=frozen_map(dict(zip(names, grad_views))),
        updates=frozen_map({name: u if u is not None else unmeasured[name] for name, u in zip(names, updates)}),
        nonfinite=nonfinite, optimizer=step.index, skipped=step.skipped, scale=step.scale, clip_norm=step.clip,
    )


def attached_line(r: StepRecord) -> str:
    """The scenario's step line, plus the optimizer, a skip and the clipping."""
    line = step_line(r)
    if r.optimizer is not None:
        line += f"  optimizer {r.optimizer}"
    if r.skipped:
        line += f"  skipped (scale {r.scale:g})"
    if r.clip_norm is not None:
        line += f"  clip {r.clip_norm[0]:.6g}/{r.clip_norm[1]:g}"
    return line


@dataclass
class AttachOptions:
    limit: int | None = None
    conditions: Sequence[Condition] = ()
    rising: RisingLoss | None = None
    max_values: int = 4096
    quiet: bool = False


class HeadlessListener:
    """Records each step of the script, writes the trace and stops the script when told to."""

    def __init__(self, path: str, options: AttachOptions, trace: TraceWriter | None, seed: int,
                 on_event: Callable[[Stepped | Stopped], None]):
        self.path, self.options, self.trace, self.seed, self.on_event = path, options, trace, seed, on_event
        self.done = 0
        self.record: StepRecord | None = None
        self.stop: StopScript | None = None
        self.losses: list[float] = []
        self._started = False

    def _start(self, step: ScriptStep) -> None:
        if self._started or self.trace is None:
            return
        self._started = True
        device = str(step.tensors[0][1].device) if step.tensors else "cpu"
        views = summarize([t for _, t in step.tensors], self.options.max_values)
        self.trace.start(scenario=self.path, seed=self.seed, device=device,
                         mode="optim" if step.kind == "optimizer" else "manual",
                         params={n: v for (n, _), v in zip(step.tensors, views)})

    def first_step(self, step: ScriptStep) -> None:
        if self.stop is not None:
            return
        self._start(step)
        if self.trace is not None:
            self.trace.optimizer(step.index, type(step.optimizer).__name__, optimizer_groups(step.optimizer))

    def paused(self, step: ScriptStep) -> None:
        if self.stop is not None:  # the script caught the KeyboardInterrupt and stepped on
            raise StopScript(self.stop.reason, self.stop.message)
        self._start(step)

    def updated(self, step: ScriptStep) -> None:
        if self.stop is not None:
            return
        if self.trace is None:  # only the step line reads the tensors: their norms and the smallest ones' values
            record = step_record(step, LINE_VALUES, large="norm")
        else:
            record = step_record(step, self.options.max_values)
        self.record, self.done = record, record.step
        if self.trace is not None:
            self.trace.step(record)
        self.on_event(Stepped(record))
        stop = self._stop_for(record)
        if stop is not None:
            self.stop = stop
            raise stop

    def _stop_for(self, record: StepRecord) -> StopScript | None:
        if record.nonfinite:
            return StopScript("nonfinite", record.nonfinite)
        previous = self.losses[-1] if self.losses else None
        if not record.skipped:
            self.losses.append(record.loss)
        env = record_env(record, previous)
        for condition in self.options.conditions:
            if condition.holds(env):
                return StopScript("until" if condition.kind == "until" else "break", condition.text)
        rising = self.options.rising
        if rising is not None and rising.holds_for(self.losses):
            return StopScript("break", rising.text)
        if self.options.limit is not None and self.done >= self.options.limit:
            return StopScript("steps")
        return None


def _end(trace: TraceWriter | None, steps: int, reason: str, message: str | None = None) -> None:
    if trace is not None:
        trace.end(steps, reason, message)


def run_attached(target: str, args: Sequence[str], *, module: bool = False, seed: int = 0,
                 options: AttachOptions | None = None, trace: TraceWriter | None = None,
                 err: TextIO | None = None) -> tuple[int, dict[str, Any] | None]:
    """Run the script attached, a line per step on ``err``; return (exit status, its globals).

    Globals are returned (else None) when the script ran to its end without stepping: the
    caller decides whether it is a scenario. The status is then EXIT_NEITHER.
    """
    err = err or sys.stderr
    options = options or AttachOptions()
    label = target if module else os.path.relpath(target) if os.path.isabs(target) else target
    last: list[StepRecord] = []

    def on_event(event: Stepped | Stopped) -> None:
        if isinstance(event, Stepped):
            last[:] = [event.record]
            if not options.quiet:
                print(attached_line(event.record), file=err, flush=True)

    listener = HeadlessListener(label, options, trace, seed, on_event)
    # the update's size is read by the trace and by conditions on update_ratio; else no copy is taken
    hooks = Hooks(listener, updates=trace is not None or any("update_ratio" in c.text for c in options.conditions))
    seed_everything(seed)
    try:
        namespace = run_script(target, args, hooks, module=module)
    except StopScript as stop:
        return _stopped(stop, listener, trace, options, label, err), None
    except KeyboardInterrupt as exc:
        stop = listener.stop
        if stop is not None:  # the script caught ours and raised its own
            return _stopped(stop, listener, trace, options, label, err), None
        _end(trace, listener.done, "interrupted")
        print(f"interrupted after {listener.done} steps", file=err)
        return interrupted_status(exc), None
    except SystemExit as exc:
        code = exc.code
        status = code if isinstance(code, int) else (0 if code is None else 1)
        if listener.stop is not None:
            return _stopped(listener.stop, listener, trace, options, label, err), None
        if isinstance(code, str):
            print(code, file=err)
        _end(trace, listener.done, "finished" if status == 0 else "error",
             None if status == 0 else f"the script exited with status {status}")
        return status, None
    except Exception as exc:  # the script's own error: one line that names its line
        if listener.stop is not None:
            return _stopped(listener.stop, listener, trace, options, label, err), None
        line = locate(exc, Path(os.path.abspath(target))) if not module else None
        where = f"{label}:{line}" if line else label
        message = f"{where}: {type(exc).__name__}: {one_line(exc)}" if str(exc) else f"{where}: {type(exc).__name__}"
        print(message, file=err)
        _end(trace, listener.done, "error", message)
        return EXIT_SCRIPT_FAILED, None
    if listener.stop is not None:  # stopped at the last step, which the script caught
        return _stopped(listener.stop, listener, trace, options, label, err), None
    if hooks.steps == 0:
        return EXIT_NEITHER, namespace
    if options.quiet and last:
        print(attached_line(last[0]), file=err)
    _end(trace, listener.done, "finished")
    return EXIT_OK, None


def _stopped(stop: StopScript, listener: HeadlessListener, trace: TraceWriter | None, options: AttachOptions,
             label: str, err: TextIO) -> int:
    record = listener.record
    if options.quiet and record is not None:
        print(attached_line(record), file=err)
    if stop.reason == "nonfinite":
        _end(trace, listener.done, "nonfinite", stop.message)
        print(f"{label}: step {record.step}: {stop.message} became NaN/Inf", file=err)
        return EXIT_NONFINITE
    _end(trace, listener.done, stop.reason, stop.message)
    if stop.message:
        print(f"stopped after step {record.step}: {stop.message}", file=err)
    return EXIT_OK


def neither_message(label: str) -> str:
    return (f"{label}: ran to its end without stepping an optimizer or updating a tensor after backward(), "
            "and defines no scenario (model and loss_fn, or loss); gdtui attaches to a training loop or loads a scenario")
