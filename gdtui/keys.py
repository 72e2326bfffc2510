"""The step-debugger's key bindings: one table for the app, the footer, the help screen and docs/step-debugger.md.

Each binding's ``description`` is the short word the footer shows; its
``tooltip`` is the sentence the help screen and docs/step-debugger.md show.
"""

from __future__ import annotations

from textual.binding import Binding

BINDINGS: list[Binding] = [
    Binding("space,n", "step", "Step", id="step", key_display="space", tooltip="Run one whole optimizer step; pressed again while it runs, the next waits its turn (space also pauses a run)"),
    Binding("s", "phase", "Phase", id="phase", tooltip="Run one phase: forward, loss, backward, update or zero_grad"),
    Binding("b,left", "rewind", "Back", id="rewind", key_display="b",
            tooltip="Rewind one step: values, gradients, optimizer state, RNG and data position"),
    Binding("c", "run", "Run", id="run", tooltip="Run continuously; c or space pauses. A NaN or Inf pauses too, and so does a breakpoint (k)"),
    Binding("r", "reset", "Reset", id="reset", tooltip="Reset: re-read the scenario file (an edit that does not load changes nothing); after a failed load, load it again"),
    Binding("m", "mode", "Mode", id="mode", tooltip="Switch the update between optimizer.step() and manual p -= lr * p.grad"),
    Binding("g", "grad_source", "Grad", id="grad_source",
            tooltip="Switch the gradient between autograd and the scenario's grad_fn (when it defines one)"),
    Binding("plus,equals_sign", "lr_up", "lr×2", id="lr_up", key_display="+", show=False, tooltip="Double the learning rate"),
    Binding("minus", "lr_down", "lr÷2", id="lr_down", key_display="-", show=False, tooltip="Halve the learning rate"),
    Binding("l", "lr_prompt", "lr", id="lr_prompt", tooltip="Type a learning rate"),
    Binding("v", "next_view", "View", id="next_view",
            tooltip="Next chart: loss per step, model against data, loss over the parameters"),
    Binding("L", "log_axis", "log", id="log_axis", show=False, tooltip="Loss chart: switch between a linear and a log10 axis"),
    Binding("enter", "detail", "Detail", id="detail", show=False,
            tooltip="Detail of the selected tensor: every value (paged), or a histogram, with its gradient"),
    Binding("k", "breakpoints", "Break", id="breakpoints", show=False,
            tooltip="Breakpoints: add or remove conditions that pause a run (c), such as loss < 0.01; "
                    "switch on 'the loss rose 3 steps in a row'"),
    Binding("z", "zero_grad", "zero_grad", id="zero_grad", show=False,
            tooltip="Skip zero_grad on or off: skipped, each step's gradient adds to the last (to see why zero_grad matters)"),
    Binding("h", "hints", "Hints", id="hints", show=False, tooltip="Every health hint of the last step, in full"),
    Binding("G", "gradcheck", "Check", id="gradcheck", show=False,
            tooltip="Gradient check: autograd (and grad_fn) against finite differences in float64"),
    Binding("M", "compare", "Compare", id="compare", show=False,
            tooltip="The update manual mode and optimizer.step() would make next, and which term makes them differ"),
    Binding("o", "optimizer_state", "Opt state", id="optimizer_state", show=False,
            tooltip="The optimizer's state per tensor: momentum buffers, Adam's moments and step size"),
    Binding("e", "export", "Export", id="export", show=False,
            tooltip="Export the steps so far (after rewinds and resets: the current ones) as JSON Lines, or CSV for a .csv path"),
    Binding("O", "output", "Output", id="output", show=False,
            tooltip="The scenario's output (print, C extensions, subprocesses), each line marked with its step"),
    Binding("question_mark", "help", "Help", id="help", key_display="?", tooltip="Help: these keys and the scenario's description"),
    Binding("d", "detach", "Detach", id="detach", show=False,
            tooltip="Detach: leave the screen and the trainer paused at its step, with its history; "
                    "gdtui --connect PATH opens it again (the screen prints that line)"),
    Binding("q", "quit", "Quit", id="quit",
            tooltip="Quit (Ctrl-C too): ends the trainer, and the trace gets its end line; "
                    "on a trainer someone started with --listen, asks first"),
]


#: Actions that wait while a help, detail, report or prompt screen is open (that screen has the keys).
SESSION_ACTIONS = {"step", "phase", "rewind", "reset", "run", "mode", "grad_source", "lr_up", "lr_down",
                   "lr_prompt", "next_view", "log_axis", "detail", "breakpoints", "zero_grad", "hints",
                   "gradcheck", "compare", "optimizer_state", "export"}
#: Actions that wait for the job in progress (the footer dims them). A step key never waits: it queues.
NEEDS_IDLE = {"phase", "reset", "mode", "detail", "zero_grad", "gradcheck", "compare", "optimizer_state", "export"}
#: What the status line says while one of these slower jobs runs.
ACTIVITY = {"gradcheck": "gradient check…", "compare": "comparing updates…",
            "optimizer_state": "reading the optimizer…", "export": "exporting…"}


def key_names(binding: Binding) -> str:
    """The keys of ``binding`` as a user types them: ``space / n``."""
    names = {"question_mark": "?", "plus": "+", "minus": "-", "equals_sign": "=", "left": "←"}
    return " / ".join(names.get(k, k) for k in binding.key.split(","))


def help_rows() -> list[tuple[str, str]]:
    """(keys, what they do) for every binding, in table order."""
    return [(key_names(b), b.tooltip) for b in BINDINGS]


def markdown_table() -> str:
    """The key table as Markdown, for docs/step-debugger.md."""
    lines = ["| Key | What it does |", "| --- | --- |"]
    for keys, text in help_rows():
        keys_md = " / ".join(f"`{k.strip()}`" for k in keys.split(" / "))
        lines.append(f"| {keys_md} | {text} |")
    lines.append("| `↑` / `↓` | Select a tensor in the parameter table |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown_table(), end="")
