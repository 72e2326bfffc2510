"""BreakpointScreen: list, add and remove the stop conditions that pause a run.

Typing an expression and pressing enter adds it (a bad one shows the parser's
one line and adds nothing); in the list, enter switches the built-in "loss
rose 3 steps in a row" condition and delete removes a condition. The screen
checks a new condition against the state's tensor and metric names (parsing
text, not numeric work) and sends each change as the whole list of texts
(``apply``: the port's SetControls); a run going on meanwhile sees the new list
from its next step.
"""

from __future__ import annotations

from collections.abc import Callable

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, Input, OptionList, Static
from textual.widgets.option_list import Option

from gdtui.engine.conditions import ConditionError, RisingLoss, parse_condition, rising_from_text
from gdtui.engine.records import SessionState

#: The built-in condition's k: "the loss rose 3 steps in a row", as the health hint says.
RISE_STEPS = 3
EXAMPLES = 'loss < 0.01 · grad_norm > 100 · param_norm["w"] < 2.5 · step == 50'


class BreakpointScreen(ModalScreen[None]):
    """Edits the stop conditions of ``state``; each change goes to ``apply`` as the whole list of
    texts (the built-in one last). Dismisses with None."""

    BINDINGS = [
        Binding("escape", "dismiss", "Close"),
        Binding("delete,backspace,d", "remove", "Remove", show=False),
    ]

    def __init__(self, state: SessionState, apply: Callable[[tuple[str, ...]], object]) -> None:
        super().__init__()
        self.state = state
        self.apply = apply
        self.rising: RisingLoss | None = None
        #: (text, kind) of each condition but the built-in one; kind "until" for --until's
        self.conditions: list[tuple[str, str]] = []
        for text in state.conditions:
            rising = rising_from_text(text)
            if rising is not None:
                self.rising = rising
            else:
                self.conditions.append((text, "until" if text in state.until else "break"))

    def _changed(self) -> None:
        self.apply(tuple(t for t, _ in self.conditions) + ((self.rising.text,) if self.rising else ()))

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
        rise = self.rising.text if self.rising is not None else f"loss rose {RISE_STEPS} steps in a row"
        options = [Option(f"[{'x' if self.rising is not None else ' '}] {rise}", id="rising")]
        options += [Option(f"    {text}" + ("   (until)" if kind == "until" else ""), id=f"c{i}")
                    for i, (text, kind) in enumerate(self.conditions)]
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
            condition = parse_condition(text, metrics=self.state.metric_names, tensors=self.state.params)
        except ConditionError as exc:
            why.update(Text(str(exc)))
            return
        why.update("")
        event.input.value = ""
        self.conditions.append((condition.text, "break"))
        self._changed()
        self._fill(highlight=len(self.conditions))

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        if event.option.id == "rising":
            self.rising = None if self.rising is not None else RisingLoss(RISE_STEPS)
            self._changed()
            self._fill(highlight=0)

    def action_remove(self) -> None:
        conditions = self.query_one(OptionList)
        if not conditions.has_focus or conditions.highlighted is None:
            return
        option = conditions.get_option_at_index(conditions.highlighted)
        if option.id == "rising":
            self.rising = None
        else:
            text = self.conditions[int(option.id[1:])][0]
            self.conditions = [c for c in self.conditions if c[0] != text]
        self._changed()
        self._fill(highlight=conditions.highlighted)
