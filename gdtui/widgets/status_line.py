"""StatusLine: where the session stands, in two lines at the top of the screen."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from gdtui.engine.formatting import format_number
from gdtui.engine.records import SessionState

MODE_NAMES = {"optim": "optim.step", "manual": "manual"}
#: The status line shows this many characters, at most, of the scenario's last output line (O shows it all).
OUTPUT_WIDTH = 40


class StatusLine(Static):
    """Title, step, epoch/batch, phase, mode, gradient source, lr, device, rewind reach, loss."""

    def show(self, state: SessionState, *, loader: bool = False, running: bool = False,
             steps_per_s: float | None = None, activity: str | None = None, output: str | None = None) -> None:
        # Always three lines (the third for a note and the trainer's last output line), so an
        # update never needs a layout pass, which would redraw the chart as well.
        text = status_text(state, loader=loader, running=running, steps_per_s=steps_per_s, activity=activity,
                           output=output)
        key = (text.plain, tuple(text.spans))  # Text's == compares the plain text only
        if key != getattr(self, "_shown", None):
            self._shown = key
            self.update(text, layout=False)

    def show_opening(self, what: str) -> None:
        """Before the session exists: the scenario is opening, or why it could not."""
        text = Text(what, style="bold")
        text.append("\n\n")
        self._shown = None
        self.update(text, layout=False)


def status_text(state: SessionState, *, loader: bool = False, running: bool = False,
                steps_per_s: float | None = None, activity: str | None = None, output: str | None = None) -> Text:
    """Step and phase first, so a narrow screen cuts the title, never the numbers.

    ``activity`` is what the worker is doing beyond a step (a gradient check, queued steps);
    ``output`` the last line the scenario printed (O shows them all).
    """
    sep = (" │ ", "dim")
    first = Text()
    first.append(f"step {state.step}", "bold")
    if loader and state.epoch is not None and state.batch is not None:
        first.append(f" epoch {state.epoch} batch {state.batch}")
    first.append(*sep)
    first.append(f"next: {state.next_phase}")
    if running:
        first.append(*sep)
        rate = f" {steps_per_s:,.0f} steps/s" if steps_per_s else ""
        first.append(f"▶ running{rate}", "bold reverse")
    if activity:
        first.append(*sep)
        first.append(activity, "bold reverse")
    if state.skip_zero_grad:
        first.append(*sep)
        first.append("zero_grad skipped", "bold")
    if state.conditions:
        n = len(state.conditions)
        first.append(*sep)
        first.append(f"{n} breakpoint{'s' if n > 1 else ''}")
    first.append(*sep)
    first.append(state.title, "bold")
    second = Text()
    second.append("mode ", "dim")
    second.append(MODE_NAMES.get(state.mode, state.mode))
    second.append(*sep)
    second.append("grad ", "dim")
    second.append(state.grad_source)
    second.append(*sep)
    second.append("lr ", "dim")
    second.append(format_number(state.lr, 4))
    second.append(*sep)
    second.append(state.device)
    second.append(*sep)
    second.append("rewind ", "dim")
    second.append(f"{state.rewind_depth}" + ("*" if state.history_note else ""))
    second.append(*sep)
    second.append("loss ", "dim")
    second.append(format_number(state.loss, 5) if state.loss is not None else "—")
    text = Text("\n").join([first, second])
    hints = tuple(getattr(h, "message", str(h)) for h in getattr(state, "hints", ()))
    notes = [n for n in (state.history_note, *state.notes, *hints) if n]
    text.append("\n")
    if output:  # the scenario's last line first, cut short, so the notes keep their room
        line = output if len(output) <= OUTPUT_WIDTH else output[: OUTPUT_WIDTH - 1] + "…"
        text.append(Text("› " + line, style="dim"))
        if notes:
            text.append(*sep)
    if notes:
        more = f" (+{len(notes) - 1} more)" if len(notes) > 1 else ""
        text.append(Text("ⓘ " + notes[0] + more, style="italic"))
    text.no_wrap = True
    text.overflow = "ellipsis"
    return text
