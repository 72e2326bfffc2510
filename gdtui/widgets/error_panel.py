"""ErrorPanel: the scenario's error (file, line, exception) or why a run paused."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static


class ErrorPanel(Static):
    """Hidden until there is something to say; the session stays usable underneath."""

    def show_error(self, message: str, label: str = "error", advice: str | None = None, tall: bool = False) -> None:
        """A scenario's error (with how to go on), or another failure that changed nothing (``advice=""``);
        ``tall`` for a message of several lines that must all show (a dead trainer's last output)."""
        text = Text()
        text.append(label + " ", "bold reverse")
        text.append(" " + message)
        advice = "fix the file, then r resets and re-reads it; q quits" if advice is None else advice
        if advice:
            text.append("\n" + advice, "dim")
        self.update(text)
        self.set_class(False, "-notice")
        self.set_class(tall, "-tall")
        self.display = True

    def show_notice(self, message: str, label: str = "paused") -> None:
        text = Text()
        text.append(label + " ", "bold reverse")
        text.append(" " + message)
        self.update(text)
        self.set_class(True, "-notice")
        self.set_class(False, "-tall")
        self.display = True

    def clear(self) -> None:
        if self.display:
            self.update("")
            self.display = False
