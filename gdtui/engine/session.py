"""The debugging session: step, phases, modes, learning rate, rewind, reset.

A :class:`Session` owns one loaded scenario (a :class:`Loop`) and where the
training is (the step, the phase, the losses). Every finished step returns a
frozen :class:`StepRecord`; the screen asks for a :class:`SessionState` when it
wants to draw. Collaborators hold the rest, each its own state:

* ``session.panel``: the user's controls, one frozen
  :class:`gdtui.engine.controls.Controls` (``session.controls``), replaced as one
  reference and read once as each step starts, and what changes them
  (:class:`gdtui.engine.control_panel.ControlPanel`);
* ``session.meter``: what a finished step measures into its record
  (:class:`gdtui.engine.meter.StepMeter`);
* ``session.rewinder``: going back (the rewind checkpoints, running steps again,
  the quiet run's deferred check), :class:`gdtui.engine.rewind.Rewinder`;
* :func:`gdtui.engine.views.session_state`: what the screen is given.
"""

from __future__ import annotations

import os
import sys
import time
from array import array
from collections.abc import Sequence
from pathlib import Path

import torch

from gdtui.engine.conditions import Condition, RisingLoss
from gdtui.engine.control_panel import ControlPanel
from gdtui.engine.controls import Controls
from gdtui.engine.health import HINT_LOOKBACK, untracked_tensors
from gdtui.engine.history import Checkpoint, History, StepControls
from gdtui.engine.loop import Loop, StepError
from gdtui.engine.meter import StepMeter
from gdtui.engine.records import PHASES, GradSource, Mode, SessionState, StepRecord
from gdtui.engine.rewind import Rewinder
from gdtui.engine.runner import StepPlan
from gdtui.engine.scenario import MODULE_NAME, load_scenario
from gdtui.engine.summarize import flat_values, summarize
from gdtui.engine.views import session_state

MB = 2**20
#: The plan of a step someone looks at: every tensor in full, checked as it runs.
WHOLE = StepPlan()


class Session:
    """Step a scenario phase by phase, switch modes, rewind and reset.

    ``mode``, ``lr`` and ``grad_source`` override the scenario's own at start and
    after every reset. Raises ScenarioError when the scenario does not load.
    """

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
        self.panel: ControlPanel | None = None
        self._install(self._load())

    # --- loading ------------------------------------------------------------------------

    def _load(self) -> Loop:
        loop = Loop(load_scenario(self.path, seed=self.seed, device=self.device_spec, file=self.file,
                                  args=self.scenario_args),
                    self.watch_activations)
        loop.check()
        return loop

    def _install(self, loop: Loop) -> None:
        # (first: a launch value it cannot take raises before anything changes)
        panel = ControlPanel.launch(loop, self.path, self._launch, self.panel.value if self.panel else Controls())
        sc = loop.sc
        self.loop = loop
        #: The user's controls and what changes them (see ControlPanel). The stop conditions and
        #: the skip-zero_grad toggle are kept across resets; the rest starts again from the launch values.
        self.panel = panel
        self.step_count = 0
        self._phase = 0
        #: The controls of the step in progress (or the last one): self.controls as that step began.
        self._taken = self.controls
        #: The controls of the last step the user ran (not one run again): its stop conditions.
        self._checked = self.controls
        #: The step being run again (see run_again): its first run's controls, used instead.
        self._again_controls: StepControls | None = None
        self._step_lrs: tuple[float, ...] = ()
        self._step_written: tuple[float, ...] | None = None
        self._scheduler_mark: int | None = None
        self._plan = WHOLE  # the plan of the step in progress
        #: How long the last step() that ran a whole step took, in seconds.
        self.last_step_seconds = 0.0
        self._checkpoint_seconds = 0.0  # how long the step in progress spent on its checkpoint
        #: What each step measures of the tensors, into its record.
        self.meter = StepMeter(loop, self.max_values)
        self._reads = True
        #: How many steps in a row, up to the last, measured what the hints read (see
        #: StepRecord.hints_whole); the first step has nothing before it to compare with.
        self.measured_streak = HINT_LOOKBACK
        self._grads_zero = all(p.grad is None for p in loop.tensors)
        #: The loss of every step since the last reset, for the chart.
        self.losses = array("d")
        #: For scenarios with one or two scalar parameters: their values, start then after each step.
        self.scalar_path: list[tuple[float, ...]] | None = None
        sizes = [t.numel() for t in loop.tensors]
        if sum(sizes) <= 2 and max(sizes) <= self.max_values:
            self.scalar_path = [tuple(self._scalar_values())]
        self.error: str | None = None
        self.untracked = untracked_tensors(sc.namespace, sc.model, loop.tensors)
        #: Going back: the rewind checkpoints and what runs steps again from them.
        self.rewinder = Rewinder(self, History(self.history_budget, every=self._checkpoint_every))

    def reset(self) -> None:
        """Re-execute the scenario file with the same seed. On failure the old session stays, untouched."""
        self.abandon_step()
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

    @property
    def scenario(self):
        return self.loop.sc

    @property
    def next_phase(self) -> str:
        return PHASES[self._phase]

    @property
    def mid_step(self) -> bool:
        """Whether a step is in progress: some of its phases ran (see abandon_step)."""
        return self._phase != 0

    # --- controls (see ControlPanel: session.panel changes them) ------------------------------

    @property
    def controls(self) -> Controls:
        """The user's controls: one frozen value, read once as each step starts."""
        return self.panel.value

    def set_controls(self, controls: Controls) -> None:
        """Use ``controls`` from the next step that starts."""
        self.panel.set(controls)

    @property
    def mode(self) -> Mode:
        return self.controls.mode

    @property
    def grad_source(self) -> GradSource:
        return self.controls.grad_source

    @property
    def skip_zero_grad(self) -> bool:
        """The teaching toggle: zero_grad is skipped, so gradients accumulate across steps."""
        return self.controls.skip_zero_grad

    @property
    def conditions(self) -> tuple[Condition, ...]:
        """The stop conditions (breakpoints and goals), kept across resets."""
        return self.controls.conditions

    @property
    def rising(self) -> RisingLoss | None:
        """The built-in "loss rose k steps in a row" condition; None when off."""
        return self.controls.rising

    @property
    def condition_texts(self) -> tuple[str, ...]:
        return self.controls.condition_texts

    @property
    def lr(self) -> float:
        """The learning rate the next update will use (first param group's)."""
        return self.panel.lr

    @property
    def notes(self) -> tuple[str, ...]:
        return self.panel.notes

    def triggered(self, record: StepRecord) -> list[Condition | RisingLoss]:
        """The stop conditions that hold after ``record``'s step: those of the controls that step
        began with (one added during the step applies from the next)."""
        return self._checked.triggered(record, self.losses)

    # --- stepping -----------------------------------------------------------------------

    def step(self, plan: StepPlan = WHOLE) -> StepRecord:
        """Run the remaining phases of the current step, as ``plan`` says (see StepPlan for what a
        light, unmeasured or deferred step leaves out); return its record.

        The plan applies to a step run whole (it is ignored when some of the step's phases
        ran already: the phase key's steps are whole). A light record says ``light``;
        :meth:`detail_last` makes the last one whole again. The NaN/Inf checks that steps
        left to later are made here, before each rewind checkpoint: when one finds that an
        earlier step went NaN/Inf, the session goes back to just after it, as a run that
        checked every step would have stopped there. This step's record is returned all the
        same; :meth:`take_first_bad` gives the first bad step's. The run asks for it after
        each step, and calls :meth:`check_deferred` before it stops.
        """
        whole = self._phase == 0
        start = time.perf_counter()
        if whole:
            self._plan = plan
            self._checkpoint_seconds = 0.0
        try:
            record = None
            while record is None:
                record = self.step_phase()
        finally:  # the steps of the phase key are whole
            self._plan = WHOLE
        history = self.rewinder.history
        if whole:
            took = self.last_step_seconds = time.perf_counter() - start
            history.note_step(took - self._checkpoint_seconds)
            self.rewinder.keep_batches()
        if self._again_controls is None:
            self.rewinder.check_due()
        return record

    def take_first_bad(self) -> StepRecord | None:
        """The record of the first step that went NaN/Inf, when the deferred check after the last
        step found one (see step), once; None else. The session is then just after that step."""
        return self.rewinder.take_first_bad()

    def run_again(self, controls: StepControls, plan: StepPlan) -> StepRecord:
        """Run the next step again as it first ran, with ``controls`` (its first run's) instead of
        the user's, which stay as they are: for the rewinder. Raises StepError as step does."""
        self._again_controls = controls
        try:
            return self.step(plan)
        finally:
            self._again_controls = None

    def _defers(self) -> bool:
        """Whether the step in progress may leave its NaN/Inf check to later (see step)."""
        plan = self._plan
        return plan.defer and not plan.whole and self.rewinder.may_defer

    def step_phase(self) -> StepRecord | None:
        """Run the next phase. Returns the step's record after zero_grad, else None.

        Raises StepError (one line) when the scenario's code fails; the session
        then goes back to the start of that step, so it stays usable.
        """
        loop = self.loop
        phase = PHASES[self._phase]
        record = None
        again = self._again_controls
        try:
            if phase == "forward":
                self.error = None
                self.meter.used = None  # the last step's gradients (see StepMeter.used): freed before a forward
                # The one read of the user's controls for this step; a step run again uses its first
                # run's, and the user's stop conditions (only for what it measures: see triggered).
                c = self.controls
                if again is None:
                    self._taken = self._checked = c
                else:
                    self._taken = Controls(again.mode, again.grad_source, again.lr_written, conditions=c.conditions,
                                           rising=c.rising, skip_zero_grad=not again.zero_grad)
                self._begin_step()
                loop.forward(self.step_count + 1)
            elif phase == "loss":
                loop.compute_loss()
            elif phase == "backward":
                loop.backward(self._taken.grad_source)
                self._grads_zero = False
            elif phase == "update":
                c = self._taken
                written = self.panel.pending_lrs(c) if again is None else c.lrs
                self._step_written = written
                loop.write_lrs(written)
                self._step_lrs = again.lrs if again is not None else tuple(c.live_lrs(c.mode, self.panel.groups()))
                # Whether this step measures is settled here, before the update (with the stop
                # conditions the step began with, which are the ones checked after it).
                self._reads = self._plan.whole or self._reads_norms()
                self.meter.copy_before_update(self._reads)
                loop.update(c.mode, self._step_lrs)
                if again is None and written is not None:
                    # Written: the param groups hold it now (and the scheduler takes it from there).
                    # A new value the screen sets is another tuple, written at its first update.
                    self.panel.lrs_written = written
                loop.after_update(self._scheduler_mark)
            else:
                record = self._finish_step()
        except StepError as exc:
            error = exc.at_step(self.step_count + 1)
            self.error = str(error)
            if again is not None:
                raise error from None  # the rewinder goes back to its checkpoint
            self.abandon_step()
            raise error from None
        self._phase = (self._phase + 1) % len(PHASES)
        if record is not None and record.nonfinite and again is None and self.rewinder.unchecked_from is None:
            # Where the NaN/Inf began: its step runs again with a probe on (only on this path). With
            # steps whose check was deferred, the check that finds the first bad one probes instead.
            try:
                record = self.rewinder.explain(record)
            except StepError as exc:  # it ran differently again: the session is back at a checkpoint
                self.error = str(exc)
                raise
        return record

    def _begin_step(self) -> None:
        self.meter.before = None
        self._step_written = None
        self._scheduler_mark = self.loop.scheduler_mark()
        self._checkpoint_seconds = self.rewinder.checkpoint(self._grads_zero)

    def _reads_norms(self) -> bool:
        """Whether the light step in progress has a reader of its norms: a stop condition, or the
        health hints (on with the activation watch) unless the step said no one will see them and
        detail_last could measure it again, with the HINT_LOOKBACK steps before it."""
        return bool(self._taken.conditions) or (
            self.watch_activations and (self._plan.hints or not self.rewinder.can_remeasure()))

    def _finish_step(self) -> StepRecord:
        light = not self._plan.whole
        read = self._reads  # whether anyone reads this step's norms and hints
        large = "full" if not light else ("norm" if read else "finite")
        if large == "finite" and self._defers() and self.meter.has_large and self.rewinder.history.off is None:
            # (asked now, not when the step began: rewind may have turned off at its checkpoint)
            large = "unchecked"
            self.rewinder.note_unchecked(self.step_count)
        previous = self.last
        hints_whole = read and self.measured_streak >= HINT_LOOKBACK
        self.measured_streak = self.measured_streak + 1 if read else 0
        c = self._taken
        record = self.meter.record(self.step_count + 1, c, self._step_lrs, light=light, read=read, large=large,
                                   hints_whole=hints_whole, previous=previous, losses=self.losses,
                                   untracked=self.untracked)
        self._grads_zero = not c.skip_zero_grad
        self.step_count += 1
        record = self.rewinder.log(StepControls(c.mode, self._step_lrs, c.grad_source, not c.skip_zero_grad,
                                                self._step_written), record)
        if self.scalar_path is not None:
            self.scalar_path.append(tuple(v for view in record.params.values() for v in view.flat))
        self.loop.clear()
        return record

    def used_grad(self, name: str) -> torch.Tensor | None:
        """The gradient the last step's update used, after that step, for a tensor whose record holds
        only its statistics (zero_grad has cleared the live one); None when it was not kept."""
        if self._phase:
            return None  # mid-step: the live gradient is the one
        return self.meter.used_grad(name, self.step_count)

    def abandon_step(self) -> None:
        """Undo the phases run so far of the step in progress (see mid_step): the session is back
        at the start of that step, as it was. Nothing to do between steps."""
        if not self._phase:
            return
        self._drop_step()
        if self.rewinder.history.oldest_step is not None:
            self.rewinder.go_to(self.step_count, mid_step=True)
        else:
            self.loop.clear()

    def _drop_step(self) -> None:
        self._phase = 0
        self.meter.before = None

    # --- going back (see Rewinder) --------------------------------------------------------

    @property
    def rewind_depth(self) -> int:
        """How many finished steps rewind can undo."""
        return self.rewinder.depth

    def rewind(self, n: int = 1) -> int:
        """Go back to the state before the last ``n`` steps; return how many were undone.

        Mid-step, the step in progress counts as one. Parameters, buffers,
        optimizer state, every RNG and the data position are restored, so stepping
        again gives the same numbers bit for bit.
        """
        history = self.rewinder.history
        if n < 1 or history.oldest_step is None:
            return 0
        undone = 0
        mid_step = self.mid_step
        if mid_step:
            undone, n = 1, n - 1
        k = min(n, self.rewind_depth)
        if undone + k:
            # The learning rates the user set that the undone steps wrote (see ControlPanel.rewound).
            written = [history.controls_of(s).lr_written for s in range(self.step_count - k + 1, self.step_count + 1)]
            if mid_step:
                written.append(self._step_written)
            user_lr = next((w for w in reversed(written) if w is not None), None)
            self._drop_step()
            self.rewinder.go_to(self.step_count - k, mid_step=mid_step)
            self.panel.rewound(user_lr)
            self.rewinder.note_unrestored()
        return undone + k

    def detail_last(self) -> StepRecord | None:
        """The last step's record with every tensor summarised in full (see Rewinder.detail_last)."""
        return self.rewinder.detail_last()

    def check_deferred(self) -> StepRecord | None:
        """Check what the steps since the last check left unchecked (see Rewinder.check_deferred)."""
        return self.rewinder.check_deferred()

    def take_replay_note(self) -> str | None:
        """What the last rewind or replay found it could not restore, once; None when nothing."""
        return self.rewinder.take_note()

    def restore_checkpoint(self, checkpoint: Checkpoint) -> None:
        """Put the session where ``checkpoint`` was taken: for the rewinder, which runs the steps
        after it again (see run_again)."""
        self._drop_step()  # (a step that failed as it ran again stopped mid-step)
        snap = checkpoint.snapshot
        self._grads_zero = snap.grads is None or snap.grads == "zeros"
        self.loop.restore(snap)
        self.step_count = checkpoint.step
        whole = checkpoint.record is None or checkpoint.record.hints_whole
        self.measured_streak = HINT_LOOKBACK if whole else 0
        del self.losses[self.step_count :]
        if self.scalar_path is not None:
            del self.scalar_path[self.step_count + 1 :]

    # --- views --------------------------------------------------------------------------

    @property
    def last(self) -> StepRecord | None:
        return self.rewinder.history.last

    @property
    def history_note(self) -> str | None:
        notes = [self.rewinder.history.note(self.rewind_depth),
                 self.loop.stream.note if self.loop.stream is not None else None]
        return "; ".join(n for n in notes if n) or None

    def state(self) -> SessionState:
        """What the screen shows now: current values, grads and controls. One host transfer."""
        return session_state(self)

    def _scalar_values(self) -> list[float]:
        views = summarize(self.loop.tensors, 2)
        return [v for view in views for v in flat_values(view.values)]
