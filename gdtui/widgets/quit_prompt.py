"""QuitPrompt: q on a screen connected to someone's --listen trainer asks before ending it."""

from __future__ import annotations

from typing import Literal

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, Static

#: What the prompt says; its keys are the answers.
QUESTION = "q again ends the trainer; d detaches; esc stays"


class QuitPrompt(ModalScreen[Literal["quit", "detach"] | None]):
    """Dismisses with "quit" (q; the app's ctrl+c too), "detach" (d), or None (escape)."""

    BINDINGS = [
        Binding("q", "answer('quit')", "End it"),
        Binding("d", "answer('detach')", "Detach"),
        Binding("escape", "answer(None)", "Stay"),
    ]

    def __init__(self, trainer: str) -> None:
        super().__init__()
        self.trainer = trainer

    def compose(self) -> ComposeResult:
        with Vertical(id="quit-prompt"):
            yield Static(Text(f"{self.trainer} was started with --listen: quitting ends it for everyone."))
            yield Static(Text(QUESTION), id="quit-question")
        yield Footer(compact=True)

    def action_answer(self, answer: Literal["quit", "detach"] | None) -> None:
        self.dismiss(answer)
