"""What the screen is given of a session: a :class:`SessionState`, with one host transfer.

:class:`Views` is the part of :class:`gdtui.engine.session.Session` that builds it.
"""

from __future__ import annotations

from gdtui.engine.health import untracked_hints
from gdtui.engine.records import SessionState, frozen_map
from gdtui.engine.summarize import scalars, summarize


class Views:
    """Session's state(). A part of :class:`gdtui.engine.session.Session`, which provides what it
    uses: ``loop``, ``last``, ``path``, ``step_count``, ``next_phase``, ``max_values``, the controls
    (``mode``, ``grad_source``, ``lr``, ``notes``, ``skip_zero_grad``, ``condition_texts``),
    ``rewind_depth``, ``history_note``, ``untracked``, ``_history`` and ``_phase``.
    """

    def state(self) -> SessionState:
        """What the screen shows now: current values, grads and controls. One host transfer."""
        loop = self.loop
        tensors = loop.tensors
        last = self.last
        if self._phase == 0 and last is not None and not last.light and self._history.oldest_step is not None:
            # Between steps the tensors hold what the last record says: summarise only the grads.
            params = last.params
            grads = frozen_map(dict(zip(loop.names, summarize([t.grad for t in tensors], self.max_values))))
        else:
            views = summarize(tensors + [t.grad for t in tensors], self.max_values)
            params = frozen_map(dict(zip(loop.names, views[: len(tensors)])))
            grads = frozen_map(dict(zip(loop.names, views[len(tensors) :])))
        loss = scalars([loop.loss])[0] if loop.loss is not None else (last.loss if last else None)
        return SessionState(
            title=loop.sc.title,
            path=str(self.path),
            device=str(loop.sc.device),
            step=self.step_count,
            next_phase=self.next_phase,
            epoch=loop.epoch if self._phase else (last.epoch if last else None),
            batch=loop.batch if self._phase else (last.batch if last else None),
            mode=self.mode,
            grad_source=self.grad_source,
            lr=self.lr,
            loss=loss,
            params=params,
            grads=grads,
            last=last,
            rewind_depth=self.rewind_depth,
            history_note=self.history_note,
            has_grad_fn=loop.sc.grad_fn is not None,
            notes=self.notes,
            hints=last.hints if last else untracked_hints(self.untracked),
            skip_zero_grad=self.skip_zero_grad,
            conditions=self.condition_texts,
            until=tuple(c.text for c in self.conditions if c.kind == "until"),
            description=loop.sc.description,
            loader=loop.sc.batches is not None,
            objective=loop.sc.objective is not None,
            target_steps=loop.sc.steps,
            metric_names=tuple(loop.sc.metrics),
            file=str(self.file),
        )
