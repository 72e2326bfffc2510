"""BreakpointScreen: list, add and remove the stop conditions that pause a run.

Typing an expression and pressing enter adds it (a bad one shows the parser's
one line and adds nothing); in the list, enter switches the built-in "loss
rose 3 steps in a row" condition and delete removes a condition. Editing the
list is parsing text, not numeric work, so it happens here on the UI thread;
a run going on meanwhile sees the new list from its next step.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, Input, OptionList, Static
from textual.widgets.option_list import Option

from gdtui.engine.conditions import ConditionError, RisingLoss

#: The built-in condition's k: "the loss rose 3 steps in a row", as the health hint says.
RISE_STEPS = 3
EXAMPLES = 'loss < 0.01 · grad_norm > 100 · param_norm["w"] < 2.5 · step == 50'


class BreakpointScreen(ModalScreen[None]):
    """Edits ``session.conditions`` and ``session.rising`` in place; dismisses with None."""

    BINDINGS = [
        Binding("escape", "dismiss", "Close"),
        Binding("delete,backspace,d", "remove", "Remove", show=False),
    ]

    def __init__(self, session) -> None:
        super().__init__()
        self.session = session

    def compose(self) -> ComposeResult:
        with Vertical(id="breakpoints"):
            yield Static(Text("breakpoints: a run (c) pauses after a step where one holds; "
                              "NaN or Inf always pauses", style="bold"))
            yield OptionList(id="conditions", compact=True, markup=False)
            yield Input(placeholder="loss < 0.01", id="condition-input")
            yield Static("", id="condition-why")
            yield Static(Text(f"{EXAMPLES}\nenter adds · tab: the list (enter switches, del removes) · esc closes",
                              style="dim"), id="breakpoint-keys")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self._fill()
        self.query_one(Input).focus()

    def _fill(self, highlight: int | None = None) -> None:
        s = self.session
        rise = s.rising.text if s.rising is not None else f"loss rose {RISE_STEPS} steps in a row"
        options = [Option(f"[{'x' if s.rising is not None else ' '}] {rise}", id="rising")]
        options += [Option(f"    {c.text}" + ("   (until)" if c.kind == "until" else ""), id=f"c{i}")
                    for i, c in enumerate(s.conditions)]
        conditions = self.query_one(OptionList)
        conditions.set_options(options)
        conditions.highlighted = min(highlight if highlight is not None else 0, len(options) - 1)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        why = self.query_one("#condition-why", Static)
        if not text:
            why.update(Text(f"type a condition, such as {EXAMPLES.split(' · ')[0]}"))
            return
        try:
            self.session.add_condition(text, "break")
        except ConditionError as exc:
            why.update(Text(str(exc)))
            return
        why.update("")
        event.input.value = ""
        self._fill(highlight=len(self.session.conditions))

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        if event.option.id == "rising":
            s = self.session
            s.rising = None if s.rising is not None else RisingLoss(RISE_STEPS)
            self._fill(highlight=0)

    def action_remove(self) -> None:
        conditions = self.query_one(OptionList)
        if not conditions.has_focus or conditions.highlighted is None:
            return
        option = conditions.get_option_at_index(conditions.highlighted)
        if option.id == "rising":
            self.session.rising = None
        else:
            self.session.remove_condition(self.session.conditions[int(option.id[1:])].text)
        self._fill(highlight=conditions.highlighted)
