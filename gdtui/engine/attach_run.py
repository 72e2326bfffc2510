"""The headless attached run: ``gdtui train.py --headless [--steps N] [--trace FILE] -- ARGS``.

One step loop, as for scenarios: the script runs in this process's main thread
(:meth:`ScriptSource.serve`, gdtui.engine.script_source) while a second thread iterates the
runner's :class:`~gdtui.engine.runner.Run` over that source and prints its events: a line per
step on stderr (the script's stdout stays its own); the run writes the trace. A stop (``--steps
N`` reached, a stop condition, a NaN/Inf) raises :class:`StopScript`, a KeyboardInterrupt, in
the script right after that step's update, as Ctrl-C would: its ``finally`` blocks and
``atexit`` handlers run.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from gdtui.engine.conditions import Condition, RisingLoss
from gdtui.engine.controls import Controls
from gdtui.engine.headless import EXIT_NONFINITE, EXIT_OK, LINE_VALUES, interrupted_status, step_line
from gdtui.engine.records import StepRecord
from gdtui.engine.runner import EveryStep, Run, Stepped, Stopped
from gdtui.engine.scenario import seed_everything
from gdtui.engine.script_kind import defines_scenario  # noqa: F401 - the CLI reads it here
from gdtui.engine.script_source import ScriptSource
from gdtui.engine.trace import TraceWriter

#: An uncaught exception in the script: python exits with 1 too.
EXIT_SCRIPT_FAILED = 1
#: Neither a training script nor a scenario.
EXIT_NEITHER = 2


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
    #: "manual": each step the script asks for does p -= lr * p.grad instead of the optimizer's update.
    mode: str = "optim"
    #: Print the health hints under each step line.
    hints: bool = False


class ScriptTrace:
    """The run's trace, with an ``optimizer`` line before the step line of each optimizer's first step."""

    def __init__(self, writer: TraceWriter, source: ScriptSource):
        self.writer, self.source = writer, source

    def step(self, record: StepRecord) -> None:
        while self.source.new_optimizers:
            self.writer.optimizer(*self.source.new_optimizers.pop(0))
        self.writer.step(record)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.writer, name)


class _Driver(threading.Thread):
    """Iterates the run over the source, printing a line per step, then stops the script where
    the run stopped (nothing to stop when it ended by itself)."""

    def __init__(self, source: ScriptSource, options: AttachOptions, trace: TraceWriter | None, err: TextIO):
        super().__init__(name="gdtui-attached-run", daemon=True)
        self.source, self.options, self.trace, self.err = source, options, trace, err
        self.run_: Run | None = None
        self.failure: BaseException | None = None

    def run(self) -> None:
        source, options = self.source, self.options
        try:
            if not source.wait_started():
                return
            traced = self.trace is not None
            run = self.run_ = Run(source, options.limit, schedule=EveryStep.headless(quiet=options.quiet, traced=traced),
                                  trace=ScriptTrace(self.trace, source) if traced else None, trace_ends=traced)
            for event in run:
                if type(event) is Stepped and not options.quiet:
                    print(attached_line(event.record), file=self.err, flush=True)
                    for hint in event.record.hints:
                        print(f"       ! {hint.message}", file=self.err)
            stopped = run.stopped
            reason = {"limit": "steps", "condition": "break"}.get(stopped.reason, stopped.reason)
            source.stop(reason, stopped.message)
        except BaseException as exc:  # a closed stderr: the script must not wait for a reader that is gone
            self.failure = exc
            source.stop("quit")

    @property
    def stopped(self) -> Stopped | None:
        return self.run_.stopped if self.run_ is not None else None


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
    # only the step line reads the tensors without a trace: their norms and the smallest ones' values;
    # the update's size is read by the trace and by conditions on update_ratio, else no copy is taken
    updates = trace is not None or any("update_ratio" in c.text for c in options.conditions)
    source = ScriptSource(target, args, module=module, seed=seed, label=label,
                          controls=Controls(mode=options.mode, conditions=tuple(options.conditions), rising=options.rising),  # type: ignore[arg-type]
                          max_values=options.max_values if trace is not None else LINE_VALUES,
                          large="full" if trace is not None else "norm", updates=updates or options.hints,
                          serve_pauses=False, hints=options.hints)
    driver = _Driver(source, options, trace, err)
    seed_everything(seed)
    driver.start()
    try:
        outcome = source.serve()
    finally:
        driver.join()
    if driver.failure is not None:
        raise driver.failure
    stopped = driver.stopped
    if stopped is None:  # no step: a scenario, or neither
        if outcome.kind == "returned":
            return EXIT_NEITHER, outcome.namespace
        return _unstepped(outcome, trace, err), None
    record = stopped.record
    if options.quiet and record is not None and stopped.reason != "interrupted":
        print(attached_line(record), file=err)
    if stopped.reason == "nonfinite":
        print(f"{label}: step {record.step}: {stopped.message} became NaN/Inf", file=err)
        return EXIT_NONFINITE, None
    if stopped.reason == "interrupted":
        print(f"interrupted after {stopped.steps} steps", file=err)
        return interrupted_status(stopped.interrupt or KeyboardInterrupt()), None
    if stopped.reason == "error":
        if outcome.exit_text:
            print(outcome.exit_text, file=err)
        elif outcome.kind == "error":
            print(outcome.message, file=err)
        return outcome.status or 1, None
    if stopped.reason == "finished" and outcome.exit_text:
        print(outcome.exit_text, file=err)
    if stopped.reason == "condition" and stopped.message:
        print(f"stopped after step {record.step}: {stopped.message}", file=err)
    return EXIT_OK, None


def _unstepped(outcome: Any, trace: TraceWriter | None, err: TextIO) -> int:
    """The script ended before its first step: by an error, an exit or Ctrl-C."""
    if outcome.kind == "interrupt":
        if trace is not None:
            trace.end(0, "interrupted")
        print("interrupted after 0 steps", file=err)
        return interrupted_status(outcome.interrupt)
    if outcome.exit_text:
        print(outcome.exit_text, file=err)
    elif outcome.message:
        print(outcome.message, file=err)
    if trace is not None:
        failed = outcome.status != 0
        trace.end(0, "error" if failed else "finished",
                  (outcome.message or f"the script exited with status {outcome.status}") if failed else None)
    return outcome.status


def neither_message(label: str) -> str:
    return (f"{label}: ran to its end without stepping an optimizer or updating a tensor after backward(), "
            "and defines no scenario (model and loss_fn, or loss); gdtui attaches to a training loop or loads a scenario")
