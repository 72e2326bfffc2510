"""An unmodified training script as a Source the one runner steps (gdtui.engine.runner.Run).

Two threads share the work. The script runs in the CALLER's thread (the trainer's main
thread, as ``python SCRIPT`` would run it): :meth:`ScriptSource.serve` runs it with
gdtui.engine.attach's hooks, and at each hook point (a step's pause, its update done) the
script's thread hands the step over and parks until told to go on. The runner drives from
another thread: :meth:`ScriptSource.step` sends "go", waits until the update of the step in
progress is done and returns its frozen StepRecord, leaving the script parked right after the
update (where a stop lands: the script's next lines have not run). :meth:`to_pause` lets it run
on to the next step's pause, with its gradients ready, for a screen to show. :meth:`stop` makes
the parked script raise :class:`StopScript`, a KeyboardInterrupt, where it is, as Ctrl-C would.

While the script is parked, the driving thread reads and writes its tensors (nothing else runs
them). At each pause it applies the user's :class:`~gdtui.engine.controls.Controls` (read once
per step): learning rates written into the optimizers' param groups once, and manual mode (the
step the script asks for does ``p -= lr * p.grad``; the optimizer sees no gradients and leaves
the tensors alone). With ``history_mb`` > 0 it keeps, at each pause, the state rewind restores:
the trained tensors and their gradients, the root modules' buffers, every optimizer's state and
param groups, the lr schedulers', the GradScalers' and every RNG (torch CPU and CUDA, numpy,
random): gdtui.engine.script_rewind takes and restores it. The script's own Python variables and
its DataLoader position cannot go back.
"""

from __future__ import annotations

import os
import queue
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from gdtui.engine.attach import Hooks, ScriptStep, run_script
from gdtui.engine.controls import Controls
from gdtui.engine.errors import ScenarioError, StepError, locate, one_line
from gdtui.engine.health import step_hints
from gdtui.engine.records import (
    Capabilities,
    DeadUnits,
    Hint,
    ScriptState,
    StepRecord,
    frozen_map,
)
from gdtui.engine.runner import SourceFinished, StepPlan
from gdtui.engine.script_records import batch_args, optimizer_groups, source_panel, step_record
from gdtui.engine.script_rewind import ScriptSnapshot, Tracked, restore, take, tracking
from gdtui.engine.summarize import summarize

MB = 1024 * 1024

#: What an attached script cannot do, and why (the screen dims these keys and shows the reason).
SCRIPT_CAPABILITIES = Capabilities(
    phases=("backward", "update"),
    rewind="state",
    missing=frozen_map({
        "gradcheck": "the gradient check needs a loss function of the parameters; a script gives none",
        "compare": "comparing updates needs a loss function of the parameters; a script gives none",
        "model_chart": "the model chart needs the data as a tensor; the script reads its own batches",
        "landscape_chart": "the loss landscape needs a loss function of the parameters; a script gives none",
        "grad_fn": "a script has no grad_fn: its gradients come from its own backward()",
        "phases": "the script runs its own loop: gdtui pauses after backward (in step()) and after the update; "
                  "its forward, loss and zero_grad run in the script's code",
        "skip_zero_grad": "the script calls zero_grad itself",
        "exact_rewind": "the script's own variables and its data position move on; rewind restores the tensors, "
                        "optimizer, schedulers, scaler and RNG only",
    }),
)



class StopScript(KeyboardInterrupt):
    """gdtui stops the script where it is parked, as Ctrl-C would (``reason``: steps, until, break,
    nonfinite, quit)."""

    def __init__(self, reason: str, message: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.message = message


@dataclass
class Outcome:
    """How the script's run ended, in the script's thread.

    ``kind``: "returned", "exit" (SystemExit, ``status``), "error" (``message``: one line with its
    file and line), "interrupt" (a KeyboardInterrupt that was not gdtui's stop), or "stopped"
    (gdtui's stop, or what the script raised instead once it caught it).
    """

    kind: str
    status: int = 0
    message: str | None = None
    exit_text: str | None = None
    interrupt: KeyboardInterrupt | None = None
    namespace: dict[str, Any] | None = None


class _ReluWatch:
    """Dead ReLU units, through a global forward hook on ``nn.ReLU`` modules (a functional
    ``F.relu`` is no module, so it is not seen): the units whose output was 0 for every sample
    of the last training forward of each ReLU since the last step, named by the module that fed
    the ReLU, as in scenarios. Changes no number."""

    def __init__(self, hooks: Hooks):
        self.hooks = hooks
        self._sites: dict[int, tuple[str, torch.Tensor, int, int]] = {}
        self._names: dict[int, str] = {}
        self._producer: dict[int, torch.nn.Module] = {}  # id of an output -> the module that returned it

    @contextmanager
    def installed(self) -> Iterator[None]:
        from torch.nn.modules import module as module_hooks

        handle = module_hooks.register_module_forward_hook(self._forward)
        try:
            yield
        finally:
            handle.remove()

    def _name(self, module: torch.nn.Module) -> str:
        name = self._names.get(id(module))
        if name is None:
            name = self._names[id(module)] = self.hooks.module_name(module)
        return name

    def _forward(self, module: torch.nn.Module, args: Any, output: Any) -> None:
        if not torch.is_grad_enabled():
            return
        if not isinstance(module, torch.nn.ReLU):
            if isinstance(output, torch.Tensor):
                if len(self._producer) >= 4096:  # a forward with no ReLU for long: ids of freed outputs
                    self._producer.clear()
                self._producer[id(output)] = module
            return
        if not isinstance(output, torch.Tensor) or output.dim() < 2 or not output.numel():
            return
        with torch.no_grad():
            a = output.detach()
            dead = a.amax(dim=(0, *range(2, a.dim()))).eq(0)  # a ReLU's output is >= 0: dead where its max is 0
        producer = self._producer.get(id(args[0])) if args else None
        name = self._name(producer) if producer is not None else self._name(module)
        self._sites[id(module)] = (name, dead, dead.numel(), a.shape[0])

    def collect(self, step: int, previous: Sequence[DeadUnits]) -> tuple[DeadUnits, ...]:
        before = {(d.site, u): s for d in previous for u, s in zip(d.units, d.since)}
        found = []
        for site, dead, width, samples in self._sites.values():
            units = tuple(torch.nonzero(dead.cpu()).flatten().tolist())
            if units:
                found.append(DeadUnits(site, units, width, samples, tuple(before.get((site, u), step) for u in units)))
        self._sites.clear()
        self._producer.clear()
        return tuple(found)


class ScriptSource:
    """A training script, stepped by the runner from one thread while it runs in another.

    ``controls``: the user's controls (replace with :meth:`set_controls`). ``history_mb``: memory
    for rewind's snapshots (0: none are taken, as headless). ``max_values``/``large``: how records
    summarise tensors (gdtui.engine.summarize). ``updates``: copy the trained tensors at each
    pause, so records carry the update. ``serve_pauses``: park at every step's pause (a screen);
    else only at the first one (its tensors start the trace) and after each update (headless).
    """

    def __init__(self, target: str, args: Sequence[str] = (), *, module: bool = False, seed: int = 0,
                 label: str | None = None, controls: Controls | None = None, history_mb: float = 0,
                 max_values: int = 4096, large: str = "full", updates: bool = True, serve_pauses: bool = True,
                 hints: bool = False):
        self.target, self.args, self.module, self.seed = target, list(args), module, seed
        self.path = label or target
        self.controls = controls or Controls()
        self.history_budget = int(history_mb * MB)
        self.max_values, self.large, self.serve_pauses, self.hints = max_values, large, serve_pauses, hints
        self.hooks = Hooks(self, updates=updates)
        self.tracked = Tracked()
        self._relus = _ReluWatch(self.hooks)
        #: Updates applied to what the tensors hold now (the runner's step count).
        self.step_count = 0
        self.last_step_seconds = 0.0
        #: The script's optimizers' first steps, (index, class, param groups), for the trace to take.
        self.new_optimizers: list[tuple[int, str, list[dict[str, Any]]]] = []
        self.outcome: Outcome | None = None
        self._events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._commands: queue.Queue[str] = queue.Queue()
        self._stopping: StopScript | None = None
        # --- the driver's side ---
        self._parked: tuple[str, Any] | None = None  # ("paused" | "updated" | "ended", step or outcome)
        self._consumed = False  # the parked update's record was returned
        self._live = 0  # updates the script made
        self._records: dict[int, StepRecord] = {}
        self._losses: list[float] = []  # every live step's loss but skipped ones, in order
        self._snapshots: dict[int, ScriptSnapshot] = {}  # at pause N, before update N
        self._live_snapshot: ScriptSnapshot | None = None  # where the script is parked, while rewound
        self._pause_steps: dict[int, ScriptStep] = {}  # what each kept pause showed (no tensor copies)
        self._history_off: str | None = None if self.history_budget > 0 else "rewind is off (--history-mb 0)"
        self._manual: list[tuple[torch.Tensor, torch.Tensor | None]] | None = None
        self._written: dict[int, tuple[float, ...]] = {}  # optimizer index -> the lrs gdtui wrote
        self._lrs_applied: tuple[float, ...] | None = None
        self._notes: list[str] = []
        self._replay_note: str | None = None

    # --- the script's thread ------------------------------------------------------------

    def serve(self) -> Outcome:
        """Run the script in this thread until it ends; the driving thread steps it meanwhile."""
        module = self.module
        try:
            with tracking(self.tracked), (self._relus.installed() if self.hints else nullcontext()):
                namespace = run_script(self.target, self.args, self.hooks, module=module)
            outcome = Outcome("returned", namespace=namespace)
        except KeyboardInterrupt as exc:
            outcome = Outcome("stopped") if self._stopping is not None else Outcome("interrupt", 130, interrupt=exc)
        except SystemExit as exc:
            code = exc.code
            status = code if isinstance(code, int) else (0 if code is None else 1)
            outcome = Outcome("exit", status, exit_text=code if isinstance(code, str) else None)
            if self._stopping is not None:
                outcome.kind = "stopped"
        except Exception as exc:  # the script's own error: one line that names its line
            line = locate(exc, Path(os.path.abspath(self.target))) if not module else None
            where = f"{self.path}:{line}" if line else str(self.path)
            message = f"{where}: {type(exc).__name__}: {one_line(exc)}" if str(exc) else f"{where}: {type(exc).__name__}"
            outcome = Outcome("stopped" if self._stopping is not None else "error", 1, message)
        self.outcome = outcome
        self._events.put(("ended", outcome))
        return outcome

    def _park(self, kind: str, step: ScriptStep) -> None:
        """Hand ``step`` to the driving thread and wait for its word."""
        self._events.put((kind, step))
        command = self._commands.get()
        if command == "stop":
            raise self._stopping  # type: ignore[misc]

    # the Listener gdtui.engine.attach's hooks call, in the script's thread

    def first_step(self, step: ScriptStep) -> None:
        self.new_optimizers.append((step.index, type(step.optimizer).__name__, optimizer_groups(step.optimizer)))

    def paused(self, step: ScriptStep) -> None:
        if self._stopping is not None:  # the script caught the KeyboardInterrupt and stepped on
            raise StopScript(self._stopping.reason, self._stopping.message)
        if self.serve_pauses or step.step == 1:
            self._park("paused", step)
        else:
            self._at_pause(step)

    def updated(self, step: ScriptStep) -> None:
        if self._stopping is not None:
            return
        self._park("updated", step)

    # --- the driving thread -------------------------------------------------------------

    def _next(self) -> None:
        kind, what = self._events.get()
        self._parked, self._consumed = (kind, what), False
        if kind == "paused":
            self._arrived(what)

    def _go(self) -> None:
        self._commands.put("go")
        self._next()

    def wait_started(self) -> bool:
        """Wait for the script's first pause; False when it ended before one."""
        if self._parked is None:
            self._next()
        return self._parked[0] != "ended"

    def stop(self, reason: str = "quit", message: str | None = None) -> None:
        """Raise StopScript in the script where it is parked (nothing when it has ended)."""
        if self._stopping is None:
            self._stopping = StopScript(reason, message)
        if self._live_snapshot is not None:  # rewound: the script's finally blocks see the state it left
            restore(self._live_snapshot)
            self._live_snapshot = None
        if self._parked is not None and self._parked[0] != "ended":
            self._parked = None
            self._commands.put("stop")

    def _ended(self) -> None:
        outcome: Outcome = self._parked[1]  # type: ignore[index]
        if outcome.kind == "error":
            raise StepError(ScenarioError(outcome.message or "the script failed"))
        if outcome.kind == "exit" and outcome.status != 0:
            raise StepError(ScenarioError(f"{self.path}: the script exited with status {outcome.status}"))
        if outcome.kind == "interrupt":
            raise outcome.interrupt  # type: ignore[misc]
        raise SourceFinished()

    def step(self, plan: StepPlan | None = None) -> StepRecord:
        """Complete the update of the step in progress (running the script to its pause first
        when it is between steps) and return its record; the script stays parked after it.
        After a rewind, the next recorded update is applied again instead, exactly."""
        started = time.perf_counter()
        try:
            if self.step_count < self._live:
                return self._forward_again()
            if self._parked is None:
                self._next()
            while True:
                kind, what = self._parked  # type: ignore[misc]
                if kind == "ended":
                    self._ended()
                if kind == "updated" and not self._consumed:
                    self._consumed = True
                    return self._finished(what, plan)
                if kind == "paused":
                    self._release(what)
                self._go()
        finally:
            self.last_step_seconds = time.perf_counter() - started

    def to_pause(self) -> bool:
        """Let the script run on to the next step's pause (gradients ready, update not done), as
        the screen shows it; False when it ended first. Nothing to do after a rewind."""
        if self.step_count < self._live:
            return True
        if self._parked is None:
            self._next()
        while self._parked[0] == "updated":
            self._go()
        return self._parked[0] == "paused"

    # --- at a pause ---------------------------------------------------------------------

    def _arrived(self, step: ScriptStep) -> None:
        """A pause was reached: note an lr the script changed, and keep the state rewind needs."""
        self._check_lrs(step)
        if not self._history_off and step.step not in self._snapshots:
            snap = take(self.hooks, self.tracked)
            if snap.nbytes > self.history_budget:
                self._history_off = (f"rewind is off: one snapshot needs {snap.nbytes / MB:.0f} MB, "
                                     f"over --history-mb {self.history_budget / MB:g}")
                self._snapshots.clear()
                return
            self._snapshots[step.step] = snap
            self._pause_steps[step.step] = replace(step, before=[], grads=None)
            while sum(s.nbytes for s in self._snapshots.values()) > self.history_budget:
                del self._snapshots[min(self._snapshots)]
            for old in [n for n in self._pause_steps if n < min(self._snapshots)]:
                del self._pause_steps[old]

    def _at_pause(self, step: ScriptStep) -> None:
        """A pause not served (headless): the controls apply in the script's thread."""
        self._check_lrs(step)
        self._release(step)

    def _release(self, step: ScriptStep) -> None:
        """The controls apply to the update about to run (read once)."""
        controls = self.controls
        if step.optimizer is None or step.skipped:
            return
        if controls.lrs is not None and controls.lrs != self._lrs_applied:
            self._lrs_applied = controls.lrs
            for i, opt in enumerate(self.hooks.optimizers):
                groups = opt.param_groups
                written = tuple(controls.lrs[min(g, len(controls.lrs) - 1)] for g in range(len(groups)))
                for group, lr in zip(groups, written):
                    group["lr"] = lr
                self._written[i] = written
        if controls.mode == "manual":
            if step.closure:
                self._note(f"step {step.step}: manual mode does not apply to a step with a closure (LBFGS): "
                           "the optimizer's update ran")
                return
            hidden = []
            with torch.no_grad():
                for group in step.optimizer.param_groups:
                    lr = float(group["lr"])
                    for p in group["params"]:
                        if p.grad is not None:
                            p.sub_(p.grad, alpha=lr)
                        hidden.append((p, p.grad))
                        p.grad = None  # the optimizer skips a tensor with no gradient
            self._manual = hidden

    def _check_lrs(self, step: ScriptStep) -> None:
        if step.index is None or step.index not in self._written:
            return
        written = self._written[step.index]
        now = tuple(float(g["lr"]) for g in step.optimizer.param_groups)
        if now != written:
            del self._written[step.index]
            self._note(f"step {step.step}: the script set optimizer {step.index}'s lr to {now[0]:g} "
                       f"(you set {written[0]:g}): its scheduler or loop overrides it")

    def _note(self, text: str) -> None:
        self._notes.append(text)
        del self._notes[:-4]

    # --- after an update ----------------------------------------------------------------

    def _finished(self, step: ScriptStep, plan: StepPlan | None) -> StepRecord:
        mode = None
        if self._manual is not None:
            for p, grad in self._manual:
                p.grad = grad
            self._manual = None
            mode = "manual"
        large = self.large if plan is None or plan.whole else "norm"
        record = step_record(step, self.max_values, large, mode)
        if self.hints:
            previous = self._records.get(record.step - 1)
            losses = [*self._losses, record.loss]
            dead = self._relus.collect(record.step, previous.dead_units if previous else ())
            record = replace(record, dead_units=dead)
            record = replace(record, hints=step_hints(record, previous, losses, unchanged={}, skip_zero_grad=False))
        self._live = self.step_count = record.step
        self._records[record.step] = record
        for old in [n for n in self._records if n < min(self._snapshots, default=record.step) - 1]:
            del self._records[old]
        if not record.skipped:
            self._losses.append(record.loss)
        return record

    # --- the runner's questions ---------------------------------------------------------

    @property
    def mode(self) -> str:
        if self.hooks.hand:
            return "manual"
        return self.controls.mode

    def set_controls(self, controls: Controls) -> None:
        """Replace the controls as one value; they apply from the next step's pause."""
        self.controls = controls

    def triggered(self, record: StepRecord) -> list[Any]:
        """The stop conditions that hold after ``record``'s step (a skipped step's loss is not one
        of the losses "previous" and the rising check read)."""
        controls = self.controls
        losses = self._losses if not record.skipped else [*self._losses, record.loss]
        return controls.triggered(record, losses)

    def check_deferred(self) -> StepRecord | None:
        return None  # every script step is checked as it finishes

    def take_first_bad(self) -> StepRecord | None:
        return None  # (so no step finds an earlier one bad)

    def detail_last(self) -> None:
        pass

    def take_replay_note(self) -> str | None:
        note, self._replay_note = self._replay_note, None
        return note

    @property
    def notes(self) -> tuple[str, ...]:
        notes = list(self._notes)
        if self.step_count < self._live:
            notes.insert(0, f"rewound to step {self.step_count}: tensors, gradients, optimizer, schedulers, scaler and "
                            f"RNG are as before update {self.step_count + 1}; the script itself stays at step "
                            f"{self._live} (its data position and variables moved on); forward re-applies the recorded "
                            "updates")
        return tuple(notes)

    # --- rewind -------------------------------------------------------------------------

    @property
    def rewind_depth(self) -> int:
        """How many steps back rewind reaches from here."""
        if not self._snapshots:
            return 0
        return max(0, self.step_count - min(self._snapshots) + 1)

    def rewind(self) -> bool:
        """Back to the pause before the last update shown (gradients included); False where the
        history does not reach (see ``history_note``)."""
        target = self.step_count  # the pause of this step is before its update
        if target < 1 or target not in self._snapshots:
            return False
        if self.step_count == self._live:
            self._live_snapshot = take(self.hooks, self.tracked)
        restore(self._snapshots[target])
        self.step_count = target - 1
        return True

    def _forward_again(self) -> StepRecord:
        nxt = self.step_count + 1
        if nxt == self._live:
            restore(self._live_snapshot)  # type: ignore[arg-type]
            self._live_snapshot = None
        else:
            restore(self._snapshots[nxt + 1])
        self.step_count = nxt
        return self._records[nxt]

    @property
    def history_note(self) -> str | None:
        if self._history_off:
            return self._history_off
        if self._snapshots and min(self._snapshots) > 1:
            return f"rewind reaches the last {self.rewind_depth} steps (--history-mb {self.history_budget / MB:g})"
        return None

    # --- what the screen shows ----------------------------------------------------------

    def state(self) -> ScriptState:
        """What the screen shows now: the tensors as they are (one host transfer), and the step
        parked at or last finished."""
        parked = self._parked
        step: ScriptStep | None = parked[1] if parked and parked[0] in ("paused", "updated") else None
        rewound = self.step_count < self._live
        if rewound:  # what the pause rewound to showed, not where the script waits
            step = self._pause_steps.get(self.step_count + 1, step)
        paused = parked is not None and parked[0] == "paused" and not rewound
        last = self._records.get(self.step_count)
        if step is not None:
            names = [n for n, _ in step.tensors]
            tensors = [t for _, t in step.tensors]
        elif last is not None:
            names, tensors = list(last.params), []
        else:
            names, tensors = [], []
        if tensors:
            views = summarize([*tensors, *[t.grad for t in tensors]], self.max_values)
            params = frozen_map(dict(zip(names, views[: len(names)])))
            grads = frozen_map(dict(zip(names, views[len(names):])))
        else:
            params = last.params if last else frozen_map({})
            grads = last.grads if last else frozen_map({})
        opt = step.optimizer if step is not None else None
        if (paused or rewound) and step is not None:
            loss: float | None = step.loss
            backwards = step.backwards
        else:
            loss = last.loss if last else None
            backwards = step.backwards if step is not None else 1
        call = "backward()" if step is not None and step.kind == "hand" else "step()"
        hints: tuple[Hint, ...] = last.hints if last else ()
        phase = "ended" if parked is None or parked[0] == "ended" else ("backward" if paused or rewound else "update")
        return ScriptState(
            path=str(self.path),
            device=str(tensors[0].device) if tensors else "cpu",
            step=self.step_count,
            live=self._live,
            pause=(step.step if paused and step is not None else (self.step_count + 1 if rewound else None)),
            phase=phase,
            mode=self.mode,  # type: ignore[arg-type]
            optimizer=step.index if step is not None else None,
            optimizer_class=type(opt).__name__ if opt is not None else None,
            lrs=tuple(float(g["lr"]) for g in opt.param_groups) if opt is not None else (),
            loss=loss,
            loss_label=f"sum of {backwards} micro-batch losses" if backwards > 1 else "loss",
            params=params,
            grads=grads,
            last=last,
            source=source_panel(step.where if step is not None else None, call),
            batch=batch_args(step.batch if step is not None else None, self.max_values),
            hints=hints,
            capabilities=SCRIPT_CAPABILITIES,
            notes=self.notes,
            rewind_depth=self.rewind_depth,
            history_note=self.history_note,
            conditions=self.controls.condition_texts,
            until=self.controls.until,
            clip_norm=step.clip if step is not None else None,
            skipped=step.skipped if step is not None else False,
            scale=step.scale if step is not None else None,
        )
