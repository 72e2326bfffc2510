"""Measuring a step: what a finished step's record holds, read from the loop's tensors.

:class:`StepMeter` does it for one loaded scenario (a :class:`gdtui.engine.loop.Loop`). It
copies the tensors before the update, summarises the parameters, their gradients and their
updates after it, as much as the step asks (every tensor in full, large ones by their norms,
or large ones only checked for NaN and Inf, or not read at all), runs zero_grad while keeping
the gradients the update used, and builds the step's frozen :class:`StepRecord`, hints and all.
What to measure is the session's to decide (see Session.step); where the training is (the
step count, the losses, the checkpoints) stays the session's too.
"""

from __future__ import annotations

from collections.abc import MutableSequence, Sequence

import torch

from gdtui.engine.controls import Controls
from gdtui.engine.health import first_nonfinite, step_hints
from gdtui.engine.loop import Loop
from gdtui.engine.records import StepRecord, TensorView, frozen_map
from gdtui.engine.summarize import scalars, summarize_step

#: A light step (see Session.step) keeps the values of tensors of at most this many elements (or
#: ``max_values``, if less); larger ones get norms. 64 is also where the app's own trace, which
#: light steps go to, stops keeping values (see TraceWriter.export_log): past it, that log holds a
#: light step's tensor as its shape and norm. Larger tensors cost a light step much more in full.
LIGHT_VALUES = 64


class StepMeter:
    """Measure each step of ``loop`` into its record; ``max_values``: the most elements of a tensor
    whose values a whole record holds (larger ones get statistics)."""

    def __init__(self, loop: Loop, max_values: int):
        self.loop = loop
        self.max_values = max_values
        sizes = [t.numel() for t in loop.tensors]
        #: The most elements of a tensor whose values a light step keeps.
        self.light_values = min(max_values, LIGHT_VALUES)
        #: Whether some tensor is larger than that: only these are summarised differently in a light step.
        self.has_large = max(sizes) > self.light_values
        #: The copies of the tensors before the step's update (see copy_before_update); None between steps.
        self.before: list[torch.Tensor | None] | None = None
        #: Where each tensor is copied before an update, kept from step to step.
        self._buffers: list[torch.Tensor | None] = [None] * len(loop.tensors)
        #: The last step's number and the gradients its update used, of the tensors too large for
        #: its record to hold (see _zero_grad_keeping); dropped as the next step starts.
        self.used: tuple[int, dict[int, torch.Tensor]] | None = None

    def copy_before_update(self, reads: bool) -> None:
        """Copy what the update's change is measured against: every tensor, or none in a light step
        whose update norms no hint or condition ``reads`` (the trace has no updates).

        The copies go into buffers kept from step to step, which the step's summary then turns
        into the change: no new memory a step (a fresh copy of a large model costs more in page
        faults than the copy itself). They never hold a checkpoint's tensors.
        """
        if not reads:
            self.before = [None] * len(self.loop.tensors)
            return
        buffers = self._buffers
        copies: list[torch.Tensor | None] = []
        for i, t in enumerate(self.loop.tensors):  # detached into buffers that need no grad: nothing is recorded
            buffer = buffers[i]
            if buffer is None or buffer.shape != t.shape or buffer.dtype != t.dtype or buffer.device != t.device:
                buffer = buffers[i] = torch.empty_like(t, memory_format=torch.contiguous_format)
            copies.append(buffer.copy_(t.detach()))
        self.before = copies

    def record(self, step: int, controls: Controls, lrs: Sequence[float], *, light: bool, read: bool, large: str,
               hints_whole: bool, previous: StepRecord | None, losses: MutableSequence[float],
               untracked: Sequence[str]) -> StepRecord:
        """Measure step ``step``, whose update just ran with ``controls`` and learning rates ``lrs``,
        run its zero_grad (unless ``controls`` skip it), append its loss to ``losses`` (every
        step's, for the hints) and return its record.

        ``light``: a light step (see Session.step); ``read``: whether anyone reads its norms and
        hints (else it gets none); ``large``: how its large tensors are summarised (see
        summarize_step); ``previous``: the record before it; ``untracked``: the scenario's
        tensors that no optimizer trains, for the hints.
        """
        loop = self.loop
        names = loop.names
        limit = self.light_values if light else self.max_values
        params, grad_views, updates = (
            dict(zip(names, views)) for views in summarize_step(loop.tensors, self.before, limit, large)
        )
        numbers = scalars([loop.loss, *loop.metric_values])
        loss, metrics = numbers[0], dict(zip(loop.sc.metrics, numbers[1:]))
        skipped = controls.skip_zero_grad
        self.used = (step, self._zero_grad_keeping(grad_views, light, controls))
        dead = loop.watch.collect(step, previous.dead_units if previous else ()) if loop.watch else ()
        unchanged = {
            name: ((previous.unchanged.get(name, 0) if previous else 0) + 1 if view.norm == 0 else 0)
            for name, view in updates.items()
        } if read else {}
        fields = dict(
            step=step,
            epoch=loop.epoch,
            batch=loop.batch,
            mode=controls.mode,
            grad_source=controls.grad_source,
            lr=lrs[0],
            loss=loss,
            params=frozen_map(params),
            grads=frozen_map(grad_views),
            updates=frozen_map(updates),
            metrics=frozen_map(metrics),
            nonfinite=first_nonfinite(loss, params, grad_views),
            zero_grad=not skipped,
            dead_units=dead,
            unchanged=frozen_map(unchanged),
            light=light and (self.has_large or not read),  # an unread step has no updates either
            hints_whole=hints_whole,
        )
        losses.append(loss)
        record = StepRecord(**fields)
        if read:  # a light step that no hint or condition reads (a quiet headless run) gets none
            # The hints read the record (its norms and values): the one without them, then the record.
            hints = step_hints(record, previous, losses, unchanged=unchanged, skip_zero_grad=skipped,
                               untracked=untracked)
            record = StepRecord(**fields, hints=hints)
        self.before = None
        return record

    def _zero_grad_keeping(self, grad_views: dict[str, TensorView | None], light: bool,
                           controls: Controls) -> dict[int, torch.Tensor]:
        """Run zero_grad, and keep the gradients the update used of the tensors whose record holds
        only their statistics (more than ``max_values`` elements), for :meth:`used_grad`.

        Kept by reference where zero_grad lets go of them (``optimizer.zero_grad()`` sets them to
        None; a skipped zero_grad leaves them), so that costs no copy; in manual mode, which zeroes
        them in place, copied, in a step someone looks at (not light). An optimizer that zeroes them
        in place keeps none.
        """
        loop = self.loop
        skipped = controls.skip_zero_grad
        keep = {i: p.grad for i, (p, name) in enumerate(zip(loop.tensors, loop.names))
                if p.grad is not None and (view := grad_views.get(name)) is not None and view.flat is None}
        in_place = not skipped and controls.mode == "manual"
        if in_place:
            keep = {} if light else {i: g.clone() for i, g in keep.items()}
        loop.zero_grad(controls.mode, skip=skipped)
        if not skipped and not in_place:
            keep = {i: g for i, g in keep.items() if loop.tensors[i].grad is not g}
        return keep

    def used_grad(self, name: str, step: int) -> torch.Tensor | None:
        """The gradient step ``step``'s update used, for a tensor whose record holds only its
        statistics; None when it was not kept, or the kept step is another (it was rewound)."""
        used = self.used
        if used is None or used[0] != step:
            return None
        return used[1].get(self.loop.names.index(name))
