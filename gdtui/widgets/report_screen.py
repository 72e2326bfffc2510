"""ReportScreen: a diagnostic's lines (gradient check, manual vs optimizer, optimizer state, hints).

The lines were made in the worker thread by the engine; this screen only
lays them out, wrapped, and marks the gradient check's verdicts.
"""

from __future__ import annotations

import re

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

#: The gradient check's verdicts, and how each is marked (bold and reverse survive NO_COLOR).
VERDICTS = (
    (re.compile(r"(?<=  )ok$"), "bold green"),
    (re.compile(r"\bmatches autograd\b"), "bold green"),
    (re.compile(r"\b\d+ at a kink\b|\bat a kink$"), "bold yellow"),
    (re.compile(r"\bmismatch$"), "bold reverse red"),
    (re.compile(r"≈\S+× autograd|\bdiffers from autograd\b"), "bold reverse red"),
)


def report_text(lines: tuple[str, ...] | list[str], *, verdicts: bool = False) -> Text:
    """The lines as one Text; the first is the heading. With ``verdicts``, the gradient check's are marked."""
    text = Text()
    for i, line in enumerate(lines):
        if i:
            text.append("\n")
        piece = Text(line, style="bold" if i == 0 else "")
        if verdicts:
            for pattern, style in VERDICTS:
                piece.highlight_regex(pattern, style)
        text.append_text(piece)
    return text


class ReportScreen(ModalScreen[None]):
    """A title, then the report's lines (or the error that stopped it), scrollable."""

    BINDINGS = [Binding("escape,q,enter", "dismiss", "Close")]

    def __init__(self, title: str, lines: tuple[str, ...], *, error: str | None = None,
                 verdicts: bool = False) -> None:
        super().__init__()
        self.title_text = title
        self.lines = lines
        self.error = error
        self.verdicts = verdicts

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="report"):
            yield Static(Text(self.title_text, style="bold reverse"), id="report-title")
            if self.error:
                yield Static(Text(self.error, style="bold"), id="report-error")
            else:
                yield Static(report_text(self.lines, verdicts=self.verdicts), id="report-body")
            yield Static(Text("esc: close · ↑↓ PgUp PgDn: scroll", style="dim"))

    def on_mount(self) -> None:
        self.query_one("#report").focus()
