"""ExportPrompt: where to write the steps so far; the export itself runs in the worker."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, Input, Static

from gdtui.engine.targets import TargetError, export_target

DEFAULT_PATH = "gdtui-trace.jsonl"


class ExportPrompt(ModalScreen[str | None]):
    """Dismisses with the path typed (DEFAULT_PATH when left empty), or None on escape.

    A path relative to ``start_dir``. A path that is one of ``kept`` (the open scenario, the
    trace log) or not a regular file is refused with one line; an existing file is replaced
    only when enter is pressed a second time on the same path.
    """

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, path: str = DEFAULT_PATH, *, start_dir: str | None = None,
                 kept: Iterable[tuple[str | Path | None, str]] = ()) -> None:
        super().__init__()
        self.path = path
        self.start_dir = start_dir or os.getcwd()
        self.kept = tuple(kept)
        self._confirmed: str | None = None  # the path whose replacement enter confirms next

    def compose(self) -> ComposeResult:
        with Vertical(id="export-prompt"):
            yield Static("export the steps so far to (a .csv path writes CSV, else JSON Lines); "
                         "enter writes, esc cancels")
            yield Input(value=self.path, id="export-input")
            yield Static("", id="export-why")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def _say(self, line: str) -> None:
        self.query_one("#export-why", Static).update(Text(line))  # a path is never markup

    def on_input_changed(self, event: Input.Changed) -> None:
        if self._confirmed is not None and event.value.strip() != self._confirmed:
            self._confirmed = None
            self._say("")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        value = event.value.strip() or DEFAULT_PATH
        try:
            target = export_target(os.path.join(self.start_dir, os.path.expanduser(value)), self.kept, shown=value)
        except TargetError as exc:
            self._say(str(exc))
            return
        if target.exists() and self._confirmed != value:
            self._confirmed = value
            self._say(f"{value} exists: enter again to replace it, esc cancels")
            return
        self.dismiss(value)

    def action_cancel(self) -> None:
        self.dismiss(None)
