"""The keys beyond stepping: breakpoints (k), skip zero_grad (z), hints (h), gradient check (G),
manual vs optimizer (M), optimizer state (o) and export (e).

A mixin of :class:`gdtui.app.GdtuiApp`: the actions send the port its commands
(gdtui.port) or open a screen, and the handlers show the frozen results the
port sends back. Nothing here computes a number or reads a Session.
"""

from __future__ import annotations

import os

from gdtui import protocol as p
from gdtui.keys import BINDINGS
from gdtui.messages import CheckProgress, DiagnosticReport, ExportDone
from gdtui.widgets.breakpoint_screen import BreakpointScreen
from gdtui.widgets.export_prompt import ExportPrompt
from gdtui.widgets.report_screen import ReportScreen


class DiagnosticsKeys:
    """Needs the app's port, state, busy, activity, export_path, start_dir, error_panel and _begin."""

    def action_breakpoints(self) -> None:
        def apply(conditions: tuple[str, ...]) -> None:
            self.port.send(p.SetControls(conditions=conditions))

        self.push_screen(BreakpointScreen(self.state, apply))

    def action_zero_grad(self) -> None:
        self.port.send(p.SetControls(skip_zero_grad=not self.state.skip_zero_grad))

    def action_hints(self) -> None:
        s = self.state
        hints = [f"! {h}" for h in (s.history_note, *s.notes, *(h.message for h in s.hints)) if h]
        lines = hints or ["nothing looks wrong"]
        self.push_screen(ReportScreen(f"health hints after step {s.step} (h)", tuple(lines), heading=False))

    def action_gradcheck(self) -> None:
        self._begin(p.GradientCheck(), "gradcheck")

    def action_compare(self) -> None:
        self._begin(p.Compare(), "compare")

    def action_optimizer_state(self) -> None:
        self._begin(p.OptimizerState(), "optimizer_state")

    def action_export(self) -> None:
        def done(path: str | None) -> None:
            if path is not None and not self.busy:
                self.export_path = path
                self._begin(p.Export(os.path.join(self.start_dir, os.path.expanduser(path))), "export")

        kept = [(self.state.file, "the open scenario"), (self.port.trace_path, "the trace log being written")]
        self.push_screen(ExportPrompt(self.export_path, start_dir=self.start_dir, kept=kept), done)

    # --- what the jobs send back ---------------------------------------------------------

    def key_escape(self) -> None:
        """Cancel a gradient check in progress (escape reaches the app when no screen takes it)."""
        if self.busy and self.state is not None and self.activity and self.activity.startswith("gradient check"):
            self._cancelling = True
            self.port.send(p.Interrupt())
            self.activity = "gradient check: cancelling…"
            self._show_status()

    def on_check_progress(self, message: CheckProgress) -> None:
        if self.busy and self.activity and self.activity.startswith("gradient check") and not self._cancelling:
            self.activity = (f"gradient check: tensor {message.k} of {message.n} ({message.name}) · "
                             "esc cancels · space queues steps, other keys wait")
            self._show_status()

    def on_diagnostic_report(self, message: DiagnosticReport) -> None:
        if message.cancelled:
            self.error_panel.show_notice("gradient check cancelled; the session is as it was", label="cancelled")
            return
        key = next(b.key for b in BINDINGS if b.action == message.kind)
        self.push_screen(ReportScreen(f"{message.title} ({key})", message.lines, error=message.error,
                                      verdicts=message.kind == "gradcheck"))

    def on_export_done(self, message: ExportDone) -> None:
        if message.ok:
            self.error_panel.show_notice(message.text, label="exported")
        else:
            self.error_panel.show_error(message.text, label="export failed", advice="")
