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
from textual.widgets import Footer, Static

#: The gradient check's verdicts, and how each is marked (bold and reverse survive NO_COLOR).
VERDICTS = (
    (re.compile(r"(?<=  )ok$"), "bold green"),
    (re.compile(r"\bmatches autograd\b"), "bold green"),
    (re.compile(r"\b\d+ at a kink\b|\bat a kink$"), "bold yellow"),
    (re.compile(r"\bmismatch$"), "bold reverse red"),
    (re.compile(r"≈\S+× autograd|\bdiffers from autograd\b"), "bold reverse red"),
)


def wrap_fields(line: str, width: int) -> list[str]:
    """Break a line too long for ``width`` between its fields (two or more spaces apart), not inside one;
    the rest goes on lines four columns deeper, so a tensor's verdict stays under its name."""
    if len(line) <= width or width < 20:
        return [line]
    indent = len(line) - len(line.lstrip(" "))
    parts = re.split(r"(?<=\S)( {2,})(?=\S)", line[indent:])  # field, gap, field, gap, ...
    lines, current = [], " " * indent + parts[0]
    for gap, field in zip(parts[1::2], parts[2::2]):
        if len(current) + len(gap) + len(field) <= width:
            current += gap + field
        else:
            lines.append(current)
            current = " " * (indent + 4) + field
    return [*lines, current]


def report_text(lines: tuple[str, ...] | list[str], *, verdicts: bool = False, width: int = 0,
                heading: bool = True) -> Text:
    """The lines as one Text, wrapped between fields to ``width`` (0: as they are); the first is a
    ``heading`` (bold). With ``verdicts``, the gradient check's are marked."""
    text = Text()
    for i, line in enumerate(lines):
        for j, part in enumerate(wrap_fields(line, width) if width else [line]):
            if i or j:
                text.append("\n")
            piece = Text(part, style="bold" if heading and i == 0 else "")
            if verdicts:
                for pattern, style in VERDICTS:
                    piece.highlight_regex(pattern, style)
            text.append_text(piece)
    return text


class ReportBody(Static):
    """The report's lines, wrapped again whenever the width changes."""

    def __init__(self, lines: tuple[str, ...], verdicts: bool, heading: bool, **kwargs) -> None:
        super().__init__(**kwargs)
        self.lines, self.verdicts, self.heading = lines, verdicts, heading

    def on_resize(self) -> None:
        self.update(report_text(self.lines, verdicts=self.verdicts, width=self.content_size.width,
                                heading=self.heading))


class ReportScreen(ModalScreen[None]):
    """A title, then the report's lines (or the error that stopped it), scrollable."""

    #: q closes, as in a pager, and the footer says so (its own: the app's one says q quits).
    BINDINGS = [Binding("escape", "dismiss", "Close", key_display="esc/q"),
                Binding("q,enter", "dismiss", "Close", show=False)]

    def __init__(self, title: str, lines: tuple[str, ...], *, error: str | None = None,
                 verdicts: bool = False, heading: bool = True) -> None:
        super().__init__()
        self.title_text = title
        self.lines = lines
        self.error = error
        self.verdicts = verdicts
        self.heading = heading

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="report"):
            yield Static(Text(self.title_text, style="bold reverse"), id="report-title")
            if self.error:
                yield Static(Text(self.error, style="bold"), id="report-error")
            else:
                yield ReportBody(self.lines, self.verdicts, self.heading, id="report-body")
            yield Static(Text("esc or q: close · ↑↓ PgUp PgDn: scroll", style="dim"))
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#report").focus()
