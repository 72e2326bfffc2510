"""ExportPrompt: where to write the steps so far; the export itself runs in the worker."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, Input, Static

DEFAULT_PATH = "gdtui-trace.jsonl"


class ExportPrompt(ModalScreen[str | None]):
    """Dismisses with the path typed (DEFAULT_PATH when left empty), or None on escape."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, path: str = DEFAULT_PATH) -> None:
        super().__init__()
        self.path = path

    def compose(self) -> ComposeResult:
        with Vertical(id="export-prompt"):
            yield Static("export the steps so far to (a .csv path writes CSV, else JSON Lines); "
                         "enter writes, esc cancels")
            yield Input(value=self.path, id="export-input")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or DEFAULT_PATH)

    def action_cancel(self) -> None:
        self.dismiss(None)
