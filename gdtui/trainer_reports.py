"""The trainer's commands that answer with a report or a value and change no step.

gdtui.trainer runs each command in its main thread; those here read the session (or set its
controls) and answer through ``send``: set controls (Controls), a tensor's detail (DetailData),
the health hints, the diagnostics (gradient check, compare, optimizer state: Report) and export
(Report). Each takes what it reads as arguments; none keeps state, except the gradient check's
:class:`CheckCancel`, which the trainer's SIGINT handler sets. Like gdtui.trainer, engine modules
are imported when a command first needs them, so the trainer's socket is served before torch loads.
"""

from __future__ import annotations

from collections.abc import Callable

from gdtui import protocol as p

Send = Callable[[object], None]


class CheckCancel:
    """A gradient check in progress (``running``) and whether an interrupt asked it to stop
    (``asked``): it stops between two evaluations, its tensors restored."""

    def __init__(self) -> None:
        self.running = False
        self.asked = False


def set_controls(session, command: p.SetControls, send: Send) -> None:
    """At once, from the connection's thread, even during a run: the session reads each control
    once, at the step (or update) that uses it. Answered with Controls (an Error first for one
    that could not be set)."""
    from gdtui.engine.display import apply_controls

    try:
        apply_controls(session, command)
    except Exception as exc:  # noqa: BLE001 - ValueError, ConditionError, ScenarioError: one line
        send(p.Error(str(exc), command.TYPE))
    send(p.Controls(session.mode, session.grad_source, session.lr, session.notes, session.skip_zero_grad,
                    session.condition_texts, tuple(x.text for x in session.conditions if x.kind == "until")))


def detail(session, name: str, send: Send) -> None:
    """The values and histograms of the tensor ``name`` (DetailData), or an Error naming it."""
    from gdtui.engine.display import detail as tensor_detail

    if name not in session.loop.names:
        send(p.Error(f"no tensor named {name!r}", "detail"))
        return
    send(p.DetailData(name, *tensor_detail(session, name)))


def hints(session, send: Send) -> None:
    """The last step made whole, and its health hints (a Report of kind hints). A StepError
    (the step ran again differently) is the caller's."""
    session.detail_last()
    last = session.last
    send(p.Report("hints", tuple(h.message for h in (last.hints if last else ()))))


def diagnose(session, command, send: Send, check: CheckCancel) -> None:
    """A gradient check (with Progress, cancelled through ``check``), a comparison of the manual
    update with optimizer.step(), or the optimizer's state: a Report of the command's kind."""
    from gdtui.engine.compare import compare_updates
    from gdtui.engine.errors import ScenarioError
    from gdtui.engine.gradcheck import CheckCancelled, gradient_check
    from gdtui.engine.optstate import optimizer_state

    def gradients(session):
        check.running, check.asked = True, False
        try:
            return gradient_check(session, progress=lambda k, n, name: send(p.Progress(k, n, name)),
                                  cancelled=lambda: check.asked)
        finally:
            check.running = False

    run = {p.GradientCheck: gradients, p.Compare: compare_updates, p.OptimizerState: optimizer_state}
    try:
        report = run[type(command)](session)
    except ScenarioError as exc:
        send(p.Error(str(exc), command.TYPE))
        return
    except CheckCancelled:
        send(p.Stopped("interrupted", session.last, "gradient check cancelled"))
        return
    send(p.Report(command.TYPE, tuple(report.lines()), bool(getattr(report, "ok", True))))


def export(session, trace, out: str, send: Send) -> None:
    """The current timeline of the trace log (gdtui.engine.display.TraceLog) to ``out``: a
    Report of kind export, one line. The steps the log keeps in memory are written first."""
    from gdtui.engine.export import ExportError, export_trace

    if trace.path is None:
        send(p.Report("export", ("no trace log to export: the system's temp folder is not writable; "
                                 "start gdtui with --trace FILE",), ok=False))
        return
    trace.flush()
    try:
        n = export_trace(trace.path, out, kept=[(session.file, "the open scenario"), *trace.kept()])
    except ExportError as exc:
        send(p.Report("export", (str(exc),), ok=False))
        return
    text = f"wrote {n} step{'' if n == 1 else 's'} to {out}"
    left_out = trace.tensors_left_out()
    send(p.Report("export", (f"{text}; {left_out}" if left_out else text,)))
