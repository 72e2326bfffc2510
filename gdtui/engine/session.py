"""The debugging session: step, phases, modes, learning rate, rewind, reset.

A :class:`Session` owns one loaded scenario (a :class:`Loop`) and the user's
controls. Every finished step returns a frozen :class:`StepRecord`; the screen
asks for a :class:`SessionState` when it wants to draw. The controls (learning
rate, modes, stop conditions) are :class:`gdtui.engine.controls.Controls`; going
back (rewind, detail_last, the quiet run's deferred check) is
:class:`gdtui.engine.rewind.Rewind`; what the screen is given, :class:`gdtui.engine.views.Views`.
"""

from __future__ import annotations

import os
import sys
import time
from array import array
from collections import deque
from collections.abc import Sequence
from pathlib import Path

import torch

from gdtui.engine.conditions import Condition, RisingLoss
from gdtui.engine.controls import Controls
from gdtui.engine.errors import ScenarioError
from gdtui.engine.health import HINT_LOOKBACK, first_nonfinite, step_hints, untracked_tensors
from gdtui.engine.history import History, StepControls
from gdtui.engine.loop import Loop, StepError
from gdtui.engine.records import PHASES, GradSource, Mode, StepRecord, TensorView, frozen_map
from gdtui.engine.rewind import Rewind
from gdtui.engine.scenario import MODULE_NAME, load_scenario
from gdtui.engine.summarize import flat_values, scalars, summarize, summarize_step
from gdtui.engine.views import Views

MB = 2**20
#: A light step (see Session.step) keeps the values of tensors of at most this many elements (or
#: ``max_values``, if less); larger ones get norms. 64 is also where the app's own trace, which
#: light steps go to, stops keeping values (see TraceWriter.export_log): past it, that log holds a
#: light step's tensor as its shape and norm. A 1024-element bias costs about 0.1 ms a step in full.
LIGHT_VALUES = 64


class Session(Controls, Rewind, Views):
    """Step a scenario phase by phase, switch modes, rewind and reset.

    ``mode``, ``lr`` and ``grad_source`` override the scenario's own at start and
    after every reset. Raises ScenarioError when the scenario does not load.
    """

    #: The last step's number and the gradients its update used, of the tensors too large for its
    #: record to hold (see _zero_grad_keeping); dropped as the next step starts.
    _used_grads: tuple[int, dict[int, torch.Tensor]] | None = None

    def __init__(
        self,
        path: str | Path,
        *,
        seed: int = 0,
        device: str = "cpu",
        history_mb: float = 256,
        max_values: int = 4096,
        mode: Mode | None = None,
        lr: float | None = None,
        grad_source: GradSource | None = None,
        watch_activations: bool = True,
        checkpoint_every: int | None = None,
        args: Sequence[str] = (),
        gradcheck_samples: int = 4,
    ):
        self.path = Path(path)
        #: Where the file is, resolved once: a scenario may change the working directory, and
        #: reset (and the gradient check) read the file again.
        self.file = Path(os.path.abspath(path))
        self.seed = seed
        #: The scenario's sys.argv[1:] (after ``--`` on the command line), at every load.
        self.scenario_args = tuple(args)
        self.device_spec = device
        self.history_budget = int(history_mb * MB)
        self.max_values = max_values
        self._launch = (mode, lr, grad_source)
        self.watch_activations = watch_activations
        #: Entries the gradient check draws from each tensor of more than 32 (--gradcheck-samples).
        self.gradcheck_samples = gradcheck_samples
        # Steps between rewind checkpoints, for each History it installs (a reset keeps it);
        # None picks it from the measured costs (see History.interval).
        self._checkpoint_every = checkpoint_every
        #: Stop conditions (breakpoints), kept across resets.
        self.conditions: list[Condition] = []
        #: The built-in "loss rose k steps in a row" condition; None when off.
        self.rising: RisingLoss | None = None
        #: Teaching toggle: skip zero_grad so gradients accumulate across steps (kept across resets).
        self.skip_zero_grad = False
        self._install(self._load())

    # --- loading ------------------------------------------------------------------------

    def _load(self) -> Loop:
        loop = Loop(load_scenario(self.path, seed=self.seed, device=self.device_spec, file=self.file,
                                  args=self.scenario_args),
                    self.watch_activations)
        loop.check()
        return loop

    def _install(self, loop: Loop) -> None:
        mode, lr, grad_source = self._launch
        sc = loop.sc
        self.loop = loop
        self.mode: Mode = mode or sc.mode  # type: ignore[assignment]
        self.grad_source: GradSource = "autograd"
        #: Learning rates the user set, written into the param groups before the next update.
        self._lr_override: list[float] | None = None
        self._manual_lr = sc.manual_lr
        self.step_count = 0
        self._phase = 0
        self._history = History(self.history_budget, every=self._checkpoint_every)
        self._step_mode: Mode = self.mode
        self._step_source: GradSource = self.grad_source
        self._step_lrs: tuple[float, ...] = ()
        self._replay_lrs: tuple[float, ...] | None = None
        self._replay_written: tuple[float, ...] | None = None
        self._step_written: tuple[float, ...] | None = None
        self._scheduler_mark: int | None = None
        self._replaying = False
        #: How long the last step() that ran a whole step took, in seconds.
        self.last_step_seconds = 0.0
        self._checkpoint_seconds = 0.0  # how long the step in progress spent on its checkpoint
        self._before: list[torch.Tensor | None] | None = None
        #: Where each tensor is copied before an update, kept from step to step (see _copies_before_update).
        self._before_buffers: list[torch.Tensor | None] = [None] * len(loop.tensors)
        self._detail = self._hints = self._reads = True
        self._defer = False  # whether the step in progress may leave its NaN/Inf check to later
        #: False once a deferred check found the optimizer's state non-finite though no step went
        #: NaN/Inf: every later check would run its steps again, so each step is checked instead.
        self._may_defer = True
        #: How many steps in a row, up to the last, measured what the hints read (see
        #: StepRecord.hints_whole); the first step has nothing before it to compare with.
        self._measured_streak = HINT_LOOKBACK
        #: With steps whose NaN/Inf check was deferred: the step count before the first of them.
        self._unchecked_from: int | None = None
        self._grads_zero = all(p.grad is None for p in loop.tensors)
        #: The loss of every step since the last reset, for the chart.
        self.losses = array("d")
        #: For scenarios with one or two scalar parameters: their values, start then after each step.
        self.scalar_path: list[tuple[float, ...]] | None = None
        sizes = [t.numel() for t in loop.tensors]
        self._light_values = min(self.max_values, LIGHT_VALUES)
        self._has_large = max(sizes) > self._light_values  # only these are summarised differently in a light step
        if sum(sizes) <= 2 and max(sizes) <= self.max_values:
            self.scalar_path = [tuple(self._scalar_values())]
        self.error: str | None = None
        self.untracked = untracked_tensors(sc.namespace, sc.model, loop.tensors)
        #: After going back: each step's first controls and loss, and the state's checksum at the
        #: end, to compare the steps that run again with (see Rewind._compare_again).
        self._again: deque[tuple[StepControls, float]] = deque()
        self._again_checksum: tuple[int, ...] | None = None
        self.replay_note = None
        self._warned_unrestored = False
        # The launch values are the command line's: a bad one names its flag, not the file.
        if lr is not None:
            try:
                self.set_lr(lr)
            except ValueError:
                raise ScenarioError(f"--lr {lr!r}: give a finite positive learning rate such as 0.01") from None
        if grad_source is not None:
            if grad_source == "grad_fn" and sc.grad_fn is None:
                raise ScenarioError(f"--grad-source grad_fn: {self.path} defines no grad_fn; define grad_fn() "
                                    "there for a hand-written gradient, or leave out --grad-source")
            self.set_grad_source(grad_source)

    def reset(self) -> None:
        """Re-execute the scenario file with the same seed. On failure the old session stays, untouched."""
        if self._phase:
            self._abandon_step()
        rng = self.loop.capture_rng()
        module = sys.modules.get(MODULE_NAME)
        try:
            loop = self._load()
        except BaseException:
            rng.restore()
            if module is not None:
                sys.modules[MODULE_NAME] = module
            raise
        self._install(loop)
        self._used_grads = None

    # --- controls -----------------------------------------------------------------------

    @property
    def scenario(self):
        return self.loop.sc

    @property
    def next_phase(self) -> str:
        return PHASES[self._phase]

    # --- stepping -----------------------------------------------------------------------

    def step(self, detail: bool = True, defer_checks: bool = False, hints: bool = True) -> StepRecord:
        """Run the remaining phases of the current step; return its record.

        ``detail=False`` is for steps no one will look at (a continuous run
        between two frames, a quiet headless run): tensors of more than
        LIGHT_VALUES elements (or max_values, if less) are summarised by their
        norms only (the norms of their updates too) when a hint or a stop
        condition reads them, else only checked for NaN and Inf; and a step
        that no hint or condition reads gets no hints and no update at all.
        The record says ``light``; :meth:`detail_last` makes the last one whole again.

        ``hints=False`` is for a light step whose hints no one will see (a
        continuous run's steps between frames; FramePacer measures the
        HINT_LOOKBACK steps before each one it shows, so that step's hints are
        whole): unless a stop condition reads its norms, it measures no update
        and gets no hints, and its large tensors are only checked for NaN and Inf.

        ``defer_checks`` is for a run that reads nothing of a light step but
        its loss and whether it went NaN/Inf (a quiet headless run, a
        continuous run's steps between frames): when no
        hint or condition reads the norms, the large tensors are not read at
        all (that check is one pass over the parameters and gradients, about 5%
        of an Adam step). They are checked once before each rewind checkpoint
        instead; when they hold a NaN or an Inf, the steps since the last check
        run again from the checkpoint, checked, up to the first that went
        NaN/Inf, and that step's record is returned, as a run that checked every
        step would have stopped there. The run calls :meth:`check_deferred`
        before it stops. With rewind off, every step is checked.
        """
        whole = self._phase == 0
        start = time.perf_counter()
        if whole:
            self._detail = detail
            self._hints = hints
            self._defer = defer_checks and not detail and self._may_defer
            self._checkpoint_seconds = 0.0
        try:
            record = None
            while record is None:
                record = self.step_phase()
        finally:  # the steps of the phase key are whole
            self._detail = self._hints = True
            self._defer = False
        if whole:
            took = self.last_step_seconds = time.perf_counter() - start
            self._history.note_step(took - self._checkpoint_seconds)
            self._keep_batches()
        if self._unchecked_from is not None and not self._replaying and self._history.due(self.step_count):
            checked = time.perf_counter()
            bad = self.check_deferred()  # before the checkpoint that replaces the last one
            if bad is None:  # (a replay's time is not the check's; once checks stop, they cost nothing)
                self._history.note_check(time.perf_counter() - checked if self._may_defer else 0.0)
            record = bad or record
        return record

    def _keep_batches(self) -> None:
        """Let the data stream keep the batches read since the oldest checkpoint, in the memory
        the checkpoints leave of the budget, so a rewind takes them from there (see BatchStream)."""
        stream, history = self.loop.stream, self._history
        if stream is None:
            return
        oldest = history.oldest_step
        since = None if oldest is None else history.checkpoint_at(oldest).snapshot.stream
        stream.keep(0 if history.off else max(0, history.budget - history.nbytes), since)

    def step_phase(self) -> StepRecord | None:
        """Run the next phase. Returns the step's record after zero_grad, else None.

        Raises StepError (one line) when the scenario's code fails; the session
        then goes back to the start of that step, so it stays usable.
        """
        loop = self.loop
        phase = PHASES[self._phase]
        record = None
        try:
            if phase == "forward":
                self.error = None
                self._used_grads = None  # the last step's gradients (see _zero_grad_keeping): freed before a forward
                self._begin_step()
                loop.forward(self.step_count + 1)
            elif phase == "loss":
                loop.compute_loss()
            elif phase == "backward":
                self._step_source = self.grad_source
                loop.backward(self._step_source)
                self._grads_zero = False
            elif phase == "update":
                self._step_mode = self.mode
                written = self._replay_written if self._replaying else self._lr_override
                self._step_written = None if written is None else tuple(written)
                loop.write_lrs(written)
                self._step_lrs = self._replay_lrs or tuple(self._live_lrs(self._step_mode))
                # Whether this step measures is settled here, before the update: a stop condition
                # added meanwhile (the k screen, during a run) must not find no copy to measure with.
                self._reads = self._detail or self._reads_norms()
                self._before = self._copies_before_update()
                loop.update(self._step_mode, self._step_lrs)
                if not self._replaying and self._lr_override is written:
                    # Written: the param groups hold it now. A new one the screen set during this
                    # update (a run goes on while + is pressed) is kept for the next update.
                    self._lr_override = None
                loop.after_update(self._scheduler_mark)
            else:
                record = self._finish_step()
        except StepError as exc:
            error = exc.at_step(self.step_count + 1)
            self.error = str(error)
            if self._replaying:
                raise error from None  # _replay goes back to its checkpoint
            self._abandon_step()
            raise error from None
        self._phase = (self._phase + 1) % len(PHASES)
        return record

    def _begin_step(self) -> None:
        self._before = None
        self._step_written = None
        self._scheduler_mark = self.loop.scheduler_mark()
        if self._history.due(self.step_count):
            loop, zero = self.loop, self._grads_zero
            self._checkpoint_seconds = self._history.take(
                self.step_count,
                loop.snapshot_nbytes(zero),
                lambda previous, spares: loop.snapshot(zero, previous=previous, spares=spares),
            )

    def _copies_before_update(self) -> list[torch.Tensor | None]:
        """What the update's change is measured against: every tensor, or none in a light step
        whose update norms no hint or condition reads (the trace has no updates).

        The copies go into buffers kept from step to step, which the step's summary then turns
        into the change: no new memory a step (a fresh copy of a large model costs more in page
        faults than the copy itself). They never hold a checkpoint's tensors.
        """
        if not self._reads:
            return [None] * len(self.loop.tensors)
        buffers = self._before_buffers
        copies: list[torch.Tensor | None] = []
        for i, t in enumerate(self.loop.tensors):  # detached into buffers that need no grad: nothing is recorded
            buffer = buffers[i]
            if buffer is None or buffer.shape != t.shape or buffer.dtype != t.dtype or buffer.device != t.device:
                buffer = buffers[i] = torch.empty_like(t, memory_format=torch.contiguous_format)
            copies.append(buffer.copy_(t.detach()))
        return copies

    def _reads_norms(self) -> bool:
        """Whether the light step in progress has a reader of its norms: a stop condition, or the
        health hints (on with the activation watch) unless the step said no one will see them and
        detail_last could measure it again, with the HINT_LOOKBACK steps before it."""
        return bool(self.conditions) or (self.watch_activations and (self._hints or not self._can_remeasure()))

    def _can_remeasure(self) -> bool:
        """Whether rewind reaches the checkpoint that running the step in progress again, with the
        HINT_LOOKBACK steps before it, would start from (see Rewind._rerun_from)."""
        oldest = self._history.oldest_step  # None with rewind off
        return oldest is not None and oldest <= self.step_count - HINT_LOOKBACK

    def _finish_step(self) -> StepRecord:
        loop = self.loop
        tensors, names = loop.tensors, loop.names
        light = not self._detail
        read = self._reads  # whether anyone reads this step's norms and hints
        large = "full" if not light else ("norm" if read else "finite")
        if large == "finite" and self._defer and self._has_large and self._history.off is None:
            # (asked now, not when the step began: rewind may have turned off at its checkpoint)
            large = "unchecked"
            if self._unchecked_from is None:
                self._unchecked_from = self.step_count
        limit = self._light_values if light else self.max_values
        params, grad_views, updates = (
            dict(zip(names, views)) for views in summarize_step(tensors, self._before, limit, large)
        )
        numbers = scalars([loop.loss, *loop.metric_values])
        loss, metrics = numbers[0], dict(zip(loop.sc.metrics, numbers[1:]))
        previous = self.last
        hints_whole = read and self._measured_streak >= HINT_LOOKBACK
        self._measured_streak = self._measured_streak + 1 if read else 0
        skipped = self.skip_zero_grad
        kept = self._zero_grad_keeping(grad_views, light, skipped)
        self._grads_zero = not skipped
        self.step_count += 1
        self._used_grads = (self.step_count, kept)
        dead = loop.watch.collect(self.step_count, previous.dead_units if previous else ()) if loop.watch else ()
        unchanged = {
            name: ((previous.unchanged.get(name, 0) if previous else 0) + 1 if view.norm == 0 else 0)
            for name, view in updates.items()
        } if read else {}
        record = StepRecord(
            step=self.step_count,
            epoch=loop.epoch,
            batch=loop.batch,
            mode=self._step_mode,
            grad_source=self._step_source,
            lr=self._step_lrs[0],
            loss=loss,
            params=frozen_map(params),
            grads=frozen_map(grad_views),
            updates=frozen_map(updates),
            metrics=frozen_map(metrics),
            nonfinite=first_nonfinite(loss, params, grad_views),
            zero_grad=not skipped,
            dead_units=dead,
            unchanged=frozen_map(unchanged),
            light=light and (self._has_large or not read),  # an unread step has no updates either
            hints_whole=hints_whole,
        )
        self.losses.append(loss)
        if read:  # a light step that no hint or condition reads (a quiet headless run) gets none
            hints = step_hints(
                record, previous, self.losses, unchanged=unchanged, skip_zero_grad=skipped, untracked=self.untracked
            )
            object.__setattr__(record, "hints", hints)  # still being built: nobody has seen it yet
        controls = StepControls(self._step_mode, self._step_lrs, self._step_source, not skipped, self._step_written)
        self._history.log(controls, record)
        self._compare_again(controls, record.step, loss)
        if self.scalar_path is not None:
            self.scalar_path.append(tuple(v for view in params.values() for v in view.flat))
        loop.clear()
        self._before = None
        return record

    def _zero_grad_keeping(self, grad_views: dict[str, TensorView | None], light: bool,
                           skipped: bool) -> dict[int, torch.Tensor]:
        """Run zero_grad, and keep the gradients the update used of the tensors whose record holds
        only their statistics (more than ``max_values`` elements), for :meth:`used_grad`.

        Kept by reference where zero_grad lets go of them (``optimizer.zero_grad()`` sets them to
        None; a skipped zero_grad leaves them), so that costs no copy; in manual mode, which zeroes
        them in place, copied, in a step someone looks at (not light). An optimizer that zeroes them
        in place keeps none.
        """
        loop = self.loop
        keep = {i: p.grad for i, (p, name) in enumerate(zip(loop.tensors, loop.names))
                if p.grad is not None and (view := grad_views.get(name)) is not None and view.flat is None}
        in_place = not skipped and self._step_mode == "manual"
        if in_place:
            keep = {} if light else {i: g.clone() for i, g in keep.items()}
        loop.zero_grad(self._step_mode, skip=skipped)
        if not skipped and not in_place:
            keep = {i: g for i, g in keep.items() if loop.tensors[i].grad is not g}
        return keep

    def used_grad(self, name: str) -> torch.Tensor | None:
        """The gradient the last step's update used, after that step, for a tensor whose record holds
        only its statistics (zero_grad has cleared the live one); None when it was not kept."""
        used = self._used_grads
        if self._phase or used is None or used[0] != self.step_count:
            return None  # mid-step (the live gradient is the one), or the kept step was rewound
        return used[1].get(self.loop.names.index(name))

    def _abandon_step(self) -> None:
        """Undo the phases run so far of the step in progress."""
        self._phase = 0
        self._before = None
        if self._history.oldest_step is not None:
            self._go_to(self.step_count, mid_step=True)
        else:
            self.loop.clear()

    # --- views --------------------------------------------------------------------------

    @property
    def last(self) -> StepRecord | None:
        return self._history.last

    @property
    def history_note(self) -> str | None:
        notes = [self._history.note(self.rewind_depth), self.loop.stream.note if self.loop.stream is not None else None]
        return "; ".join(n for n in notes if n) or None

    def _scalar_values(self) -> list[float]:
        views = summarize(self.loop.tensors, 2)
        return [v for view in views for v in flat_values(view.values)]
