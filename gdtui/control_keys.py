"""The keys that change what the next step does or what the screen shows: mode (m), gradient
source, learning rate (×2, ÷2, and typed), chart view, log axis, detail (Enter) and help.

A mixin of :class:`gdtui.app.GdtuiApp`, like :class:`gdtui.diagnostics_keys.DiagnosticsKeys`:
a control applies from the next step, and the state shown says so at once. Nothing here
computes a number.
"""

from __future__ import annotations

from dataclasses import replace

from textual.widgets import DataTable

from gdtui.engine.errors import ScenarioError
from gdtui.widgets.help_screen import HelpScreen
from gdtui.widgets.lr_prompt import LrPrompt


class ControlKeys:
    """Needs the app's session, state, views, jobs, table, chart, busy, scenario_path, _begin,
    _request_chart and _show_state."""

    def action_mode(self) -> None:
        self.session.toggle_mode()
        self._controls_changed()

    def action_grad_source(self) -> None:
        try:
            self.session.toggle_grad_source()
        except ScenarioError as exc:
            self.notify(str(exc), severity="warning", markup=False)
        self._controls_changed()

    def action_lr_up(self) -> None:
        self.session.scale_lr(2.0)
        self._controls_changed()

    def action_lr_down(self) -> None:
        self.session.scale_lr(0.5)
        self._controls_changed()

    def action_lr_prompt(self) -> None:
        def done(lr: float | None) -> None:
            if lr is not None:
                self.session.set_lr(lr)
                self._controls_changed()

        self.push_screen(LrPrompt(self.session.lr), done)

    def action_next_view(self) -> None:
        i = self.views.index(self.jobs.chart_view) if self.jobs.chart_view in self.views else -1
        self.jobs.chart_view = self.views[(i + 1) % len(self.views)]
        self._request_chart()

    def action_log_axis(self) -> None:
        self.chart.toggle_log()

    def action_detail(self) -> None:
        name = self.table.selected_name()
        if name is not None and not self.busy:
            self._begin("detail", name)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_detail()

    def action_help(self) -> None:
        if self.session is None:
            self.push_screen(HelpScreen(self.scenario_path, ""))
        else:
            sc = self.session.scenario
            self.push_screen(HelpScreen(sc.title, sc.description))

    def _controls_changed(self) -> None:
        """Mode, lr or gradient source changed: they apply from the next step; show them now."""
        s = self.session
        self.state = replace(self.state, mode=s.mode, lr=s.lr, grad_source=s.grad_source, notes=s.notes,
                             skip_zero_grad=s.skip_zero_grad, conditions=s.condition_texts)
        self._show_state(self.state)
