"""LrPrompt: type a learning rate; bad input says why and changes nothing."""

from __future__ import annotations

import math

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, Input, Static

from gdtui.engine.formatting import format_number


def parse_lr(text: str) -> tuple[float | None, str | None]:
    """(lr, None) for a positive finite number, else (None, why not)."""
    text = text.strip()
    if not text:
        return None, "type a number such as 0.01 or 1e-3"
    try:
        lr = float(text)
    except ValueError:
        return None, f"{text!r} is not a number; type one such as 0.01 or 1e-3"
    if not math.isfinite(lr) or lr <= 0:
        return None, f"{text} is not a positive, finite number; the learning rate must be > 0"
    return lr, None


class LrPrompt(ModalScreen[float | None]):
    """Dismisses with the new learning rate, or None on escape."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, current: float) -> None:
        super().__init__()
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical(id="lr-prompt"):
            yield Static(Text(f"learning rate (now {format_number(self.current)}); enter sets it, esc cancels"))
            yield Input(value=format_number(self.current), id="lr-input")
            yield Static("", id="lr-why")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        lr, why = parse_lr(event.value)
        if why is not None:
            self.query_one("#lr-why", Static).update(Text(why))  # it quotes the input: never markup
            return
        self.dismiss(lr)

    def action_cancel(self) -> None:
        self.dismiss(None)
