"""LoopPanel: the training loop as the user would write it, with the line about to run marked."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from gdtui.engine.records import SessionState


def loop_lines(state: SessionState, *, objective: bool, loader: bool) -> list[tuple[str | None, str]]:
    """(phase or None, code line) for the current mode and gradient source."""
    lines: list[tuple[str | None, str]] = []
    if loader:
        lines.append((None, "for x, y in data:"))
    else:
        lines.append((None, "for step in range(steps):"))
    if objective:
        lines.append(("forward", "    # no model: loss() reads the params"))
        lines.append(("loss", "    loss = loss()"))
    else:
        lines.append(("forward", "    pred = model(x)"))
        lines.append(("loss", "    loss = loss_fn(pred, y)"))
    if state.grad_source == "grad_fn":
        lines.append(("backward", "    grads = grad_fn()  # → p.grad"))
    else:
        lines.append(("backward", "    loss.backward()"))
    zero = "optimizer.zero_grad()" if state.mode == "optim" else "p.grad.zero_()"
    if state.mode == "optim":
        lines.append(("update", "    optimizer.step()"))
    else:
        lines.append(("update", "    with torch.no_grad():"))
        lines.append(("update", "        p -= lr * p.grad"))
    if state.skip_zero_grad:  # z: the teaching toggle
        lines.append(("zero_grad", f"    # {zero}"))
        lines.append((None, "    # ↑ skipped: grads add up"))
    else:
        lines.append(("zero_grad", f"    {zero}"))
    return lines


class LoopPanel(Static):
    """The loop's code; ``▶`` and reverse video mark the phase that runs next."""

    _shown: tuple | None = None

    def show(self, state: SessionState, *, objective: bool, loader: bool) -> None:
        key = (state.next_phase, state.mode, state.grad_source, state.skip_zero_grad, objective, loader)
        if key == self._shown:
            return  # in run mode the loop panel rarely changes: skip the repaint
        self._shown = key
        text = Text(no_wrap=True, overflow="ellipsis")
        for i, (phase, code) in enumerate(loop_lines(state, objective=objective, loader=loader)):
            if i:
                text.append("\n")
            if phase is not None and phase == state.next_phase:
                text.append("▶ " + code, "bold reverse")
            else:
                text.append("  " + code)
        self.update(text, layout=False)  # fixed width, full height: its size never depends on the text
