"""The keys beyond stepping: breakpoints (k), skip zero_grad (z), hints (h), gradient check (G),
manual vs optimizer (M), optimizer state (o) and export (e).

A mixin of :class:`gdtui.app.GdtuiApp`: the actions start the worker's jobs
(gdtui.jobs) or open a screen, and the handlers show the frozen results the
jobs send back. Nothing here computes a number.
"""

from __future__ import annotations

import os

from gdtui.keys import BINDINGS
from gdtui.messages import CheckProgress, DiagnosticReport, ExportDone
from gdtui.widgets.breakpoint_screen import BreakpointScreen
from gdtui.widgets.export_prompt import ExportPrompt
from gdtui.widgets.report_screen import ReportScreen


class DiagnosticsKeys:
    """Needs the app's session, state, busy, export_path, start_dir, error_panel, _begin, _idle and _controls_changed."""

    def action_breakpoints(self) -> None:
        self.push_screen(BreakpointScreen(self.session), lambda _: self._controls_changed())

    def action_zero_grad(self) -> None:
        self.session.skip_zero_grad = not self.session.skip_zero_grad
        self._controls_changed()

    def action_hints(self) -> None:
        s = self.state
        hints = [f"! {h}" for h in (s.history_note, *s.notes, *(h.message for h in s.hints)) if h]
        lines = hints or ["nothing looks wrong"]
        self.push_screen(ReportScreen(f"health hints after step {s.step} (h)", tuple(lines), heading=False))

    def action_gradcheck(self) -> None:
        self._begin("gradcheck")

    def action_compare(self) -> None:
        self._begin("compare")

    def action_optimizer_state(self) -> None:
        self._begin("optimizer_state")

    def action_export(self) -> None:
        def done(path: str | None) -> None:
            if path is not None and not self.busy:
                self.export_path = path
                self._begin("export", os.path.join(self.start_dir, os.path.expanduser(path)))

        kept = [(self.session.file, "the open scenario"), (self.trace.path, "the trace log being written")]
        self.push_screen(ExportPrompt(self.export_path, start_dir=self.start_dir, kept=kept), done)

    # --- what the jobs send back ---------------------------------------------------------

    def key_escape(self) -> None:
        """Cancel a gradient check in progress (escape reaches the app when no screen takes it)."""
        if self.busy and self.jobs is not None and self.activity and self.activity.startswith("gradient check"):
            self.jobs.cancel.set()
            self.activity = "gradient check: cancelling…"
            self._show_status()

    def on_check_progress(self, message: CheckProgress) -> None:
        if self.busy and self.activity and self.activity.startswith("gradient check") and not self.jobs.cancel.is_set():
            self.activity = (f"gradient check: tensor {message.k} of {message.n} ({message.name}) · "
                             "esc cancels · space queues steps, other keys wait")
            self._show_status()

    def on_diagnostic_report(self, message: DiagnosticReport) -> None:
        self._idle()
        if message.cancelled:
            self.error_panel.show_notice("gradient check cancelled; the session is as it was", label="cancelled")
            return
        key = next(b.key for b in BINDINGS if b.action == message.kind)
        self.push_screen(ReportScreen(f"{message.title} ({key})", message.lines, error=message.error,
                                      verdicts=message.kind == "gradcheck"))

    def on_export_done(self, message: ExportDone) -> None:
        self._idle()
        if message.ok:
            self.error_panel.show_notice(message.text, label="exported")
        else:
            self.error_panel.show_error(message.text, label="export failed", advice="")
