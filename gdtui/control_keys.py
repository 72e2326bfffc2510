"""The keys that change what the next step does or what the screen shows: mode (m), gradient
source, learning rate (×2, ÷2, and typed), chart view, log axis, detail (Enter) and help.

A mixin of :class:`gdtui.app.GdtuiApp`, like :class:`gdtui.diagnostics_keys.DiagnosticsKeys`:
a control is a command to the port (SetControls), which applies it from the next
step and answers with ControlsChanged, shown at once. Nothing here computes a number or
reads a Session.
"""

from __future__ import annotations

from dataclasses import replace

from textual.widgets import DataTable

from gdtui import protocol as p
from gdtui.messages import ControlsChanged, ControlsRefused
from gdtui.widgets.help_screen import HelpScreen
from gdtui.widgets.lr_prompt import LrPrompt


class ControlKeys:
    """Needs the app's port, state, views, chart_view, table, chart, busy, scenario_path, _begin,
    _request_chart and _show_state."""

    def action_mode(self) -> None:
        self.port.send(p.SetControls(mode="optim" if self.state.mode == "manual" else "manual"))

    def action_grad_source(self) -> None:
        self.port.send(p.SetControls(grad_source="grad_fn" if self.state.grad_source == "autograd" else "autograd"))

    def action_lr_up(self) -> None:
        self.port.send(p.SetControls(lr_scale=2.0))

    def action_lr_down(self) -> None:
        self.port.send(p.SetControls(lr_scale=0.5))

    def action_lr_prompt(self) -> None:
        def done(lr: float | None) -> None:
            if lr is not None:
                self.port.send(p.SetControls(lr=lr))

        self.push_screen(LrPrompt(self.state.lr), done)

    def action_next_view(self) -> None:
        i = self.views.index(self.chart_view) if self.chart_view in self.views else -1
        self.chart_view = self.views[(i + 1) % len(self.views)]
        self._request_chart()

    def action_log_axis(self) -> None:
        self.chart.toggle_log()

    def action_detail(self) -> None:
        name = self.table.selected_name()
        if name is not None and not self.busy:
            self._begin(p.Detail(name))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_detail()

    def action_help(self) -> None:
        if self.state is None:
            self.push_screen(HelpScreen(self.scenario_path, ""))
        else:
            self.push_screen(HelpScreen(self.state.title, self.state.description))

    def on_controls_changed(self, message: ControlsChanged) -> None:
        """Mode, lr, gradient source, zero_grad or the stop conditions changed: they apply from the next step; show them now."""
        if self.state is None:
            return
        self.state = replace(self.state, mode=message.mode, lr=message.lr, grad_source=message.grad_source,
                             notes=message.notes, skip_zero_grad=message.skip_zero_grad,
                             conditions=message.conditions, until=message.until)
        self._show_state(self.state)

    def on_controls_refused(self, message: ControlsRefused) -> None:
        self.notify(message.error, severity="warning", markup=False)
