"""What the screen is given of a session: a :class:`SessionState`, with one host transfer.

:func:`session_state` builds it from a :class:`gdtui.engine.session.Session`'s public
attributes (Session.state calls it); it keeps no state of its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gdtui.engine.health import untracked_hints
from gdtui.engine.records import SessionState, frozen_map, shown_grads
from gdtui.engine.summarize import scalars, summarize

if TYPE_CHECKING:
    from gdtui.engine.session import Session


def session_state(session: Session) -> SessionState:
    """What the screen shows now: current values, grads and controls. One host transfer.

    The gradient to show (``shown_grads``) is decided here, once, for every screen."""
    controls = session.controls
    loop = session.loop
    tensors = loop.tensors
    last = session.last
    mid_step = session.mid_step
    if not mid_step and last is not None and not last.light and session.rewinder.history.oldest_step is not None:
        # Between steps the tensors hold what the last record says: summarise only the grads.
        params = last.params
        grads = frozen_map(dict(zip(loop.names, summarize([t.grad for t in tensors], session.max_values))))
    else:
        views = summarize(tensors + [t.grad for t in tensors], session.max_values)
        params = frozen_map(dict(zip(loop.names, views[: len(tensors)])))
        grads = frozen_map(dict(zip(loop.names, views[len(tensors) :])))
    loss = scalars([loop.loss])[0] if loop.loss is not None else (last.loss if last else None)
    return SessionState(
        title=loop.sc.title,
        path=str(session.path),
        device=str(loop.sc.device),
        step=session.step_count,
        next_phase=session.next_phase,
        epoch=loop.epoch if mid_step else (last.epoch if last else None),
        batch=loop.batch if mid_step else (last.batch if last else None),
        mode=controls.mode,
        grad_source=controls.grad_source,
        lr=session.lr,
        loss=loss,
        params=params,
        grads=grads,
        last=last,
        shown_grads=shown_grads(session.step_count, session.next_phase, grads, last),
        rewind_depth=session.rewind_depth,
        history_note=session.history_note,
        has_grad_fn=loop.sc.grad_fn is not None,
        notes=session.notes,
        hints=last.hints if last else untracked_hints(session.untracked),
        skip_zero_grad=controls.skip_zero_grad,
        conditions=controls.condition_texts,
        until=controls.until,
        description=loop.sc.description,
        loader=loop.sc.batches is not None,
        objective=loop.sc.objective is not None,
        target_steps=loop.sc.steps,
        metric_names=tuple(loop.sc.metrics),
        file=str(session.file),
    )
