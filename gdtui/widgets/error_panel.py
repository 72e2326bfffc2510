"""ErrorPanel: the scenario's error (file, line, exception) or why a run paused."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static


class ErrorPanel(Static):
    """Hidden until there is something to say; the session stays usable underneath."""

    def show_error(self, message: str) -> None:
        text = Text()
        text.append("error ", "bold reverse")
        text.append(" " + message)
        text.append("\nfix the file, then r resets and re-reads it; q quits", "dim")
        self.update(text)
        self.set_class(False, "-notice")
        self.display = True

    def show_notice(self, message: str) -> None:
        text = Text()
        text.append("paused ", "bold reverse")
        text.append(" " + message)
        self.update(text)
        self.set_class(True, "-notice")
        self.display = True

    def clear(self) -> None:
        if self.display:
            self.update("")
            self.display = False
