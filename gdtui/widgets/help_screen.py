"""HelpScreen: the key table (the same one the footer and docs/step-debugger.md use) and the scenario's story."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Static

from gdtui.keys import help_rows


def key_table() -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    for keys, text in help_rows():
        table.add_row(Text(keys), Text(text))
    table.add_row("↑ / ↓", "Select a tensor in the parameter table")
    return table


class HelpScreen(ModalScreen[None]):
    #: q and ? close, and the footer says so (its own: the app's one says q quits).
    BINDINGS = [Binding("escape", "dismiss", "Close", key_display="esc/q/?"),
                Binding("q,question_mark", "dismiss", "Close", show=False)]

    def __init__(self, title: str, description: str) -> None:
        super().__init__()
        self.scenario_title = title
        self.description = description

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Static(Text("gdtui keys", style="bold"))
            yield Static(key_table(), id="keys")
            yield Static(Text(f"\n{self.scenario_title}", style="bold"), id="scenario-title")
            if self.description:
                yield Static(Text(self.description))  # the docstring as written: y[i] stays y[i]
            yield Static(Text("\nesc, q or ?: close · ↑↓ PgUp PgDn: scroll", style="dim"))
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#help").focus()
