"""Issue 12, the screen's cases: user text is never markup, keys after quit, a scenario's
KeyboardInterrupt, the detail view's gradient, and modal screens' footers.

Driven key by key with Pilot at 80x24, like test_app. Numbers are checked against a
plain PyTorch loop written out here, never against values the app produced.
"""

from __future__ import annotations

import pytest
import torch
from textual import events
from textual.widgets import Footer, Static

from gdtui.jobs import make_app
from gdtui.widgets.error_panel import ErrorPanel
from gdtui.widgets.help_screen import HelpScreen
from gdtui.widgets.lr_prompt import LrPrompt
from tests.app.pilot_helpers import NOT_GATE, OWN, opened, press, status
from tests.plain_loop import PlainLoop

# --- case 10: user text is never markup --------------------------------------------------


async def test_brackets_typed_in_the_lr_prompt_give_one_line_not_a_markup_error():
    """Issue 12 case 10: `l`, then `[/]` and Enter: one line saying why, the prompt stays, the app lives."""
    app = make_app(NOT_GATE)
    async with opened(app) as pilot:
        await press(pilot, "l", *["backspace"] * 8, "[", "/", "]", "enter")
        assert app.is_running and isinstance(app.screen, LrPrompt)
        why = str(app.screen.query_one("#lr-why", Static).render())
        assert why == "'[/]' is not a number; type one such as 0.01 or 1e-3"
        assert app.port.session.lr == 10  # not_gate's own lr: nothing changed
        await press(pilot, "escape", "space")
        assert app.port.session.step_count == 1


async def test_help_shows_a_docstring_with_brackets_as_written():
    """Issue 12 case 10: `?` on a scenario whose docstring holds `[/]`, `y[i]` and `[bold]`: shown literally."""
    path = OWN / "brackets_in_docstring.py"
    title, _, description = path.read_text().split('"""')[1].partition("\n")
    app = make_app(path)
    async with opened(app) as pilot:
        await press(pilot, "question_mark")
        assert app.is_running and isinstance(app.screen, HelpScreen)
        shown = [str(s.render()) for s in app.screen.query(Static)]
        assert f"\n{title}" in shown  # the title line, "[bold]" and "[/]" included
        assert description.strip() in shown  # "y[i] = w * x[i]" keeps its brackets


# --- case 11: keys that arrive after quit ---------------------------------------------------


def burst(app, *keys: tuple[str, str | None]) -> None:
    """Keys as the driver delivers one read of the terminal: all queued before the first is handled."""
    for key, character in keys:
        app.post_message(events.Key(key, character))


@pytest.mark.parametrize(("key", "character"), [("e", "e"), ("l", "l"), ("k", "k"), ("question_mark", "?"),
                                                ("h", "h")])
async def test_keys_in_the_same_burst_as_quit_do_nothing(key, character):
    """Issue 12 case 11: `q` then at once `e`, `l`, `k`, `?` (or `h`, another screen): the app quits, no NoMatches."""
    app = make_app(NOT_GATE)
    async with opened(app) as pilot:
        await press(pilot, "space")
        burst(app, ("q", "q"), (key, character))
        await pilot.pause()
        await pilot.pause()
        assert not app.is_running
    assert app.return_code == 0


# --- case 12: a scenario's KeyboardInterrupt, and exceptions that are not an Exception ------


@pytest.mark.parametrize(("name", "line", "what"), [
    ("interrupts_at_step_2.py", 21, "step 2: loss_fn raised KeyboardInterrupt: stopped by the scenario"),
    ("interrupts_in_optimizer_hook.py", 17, "step 2: optimizer.step() raised KeyboardInterrupt: the hook stops the second step"),
    ("halts_in_data.py", 19, "step 2: fetching the next batch from data raised Halt: the dataset stops at item 1"),
])
async def test_a_keyboard_interrupt_from_the_scenario_shows_in_the_error_panel(name, line, what):
    """Issue 12 case 12: scenario code that raises KeyboardInterrupt (or another BaseException) during
    a step: the error panel names file:line, the step is undone, the keys come back, the app lives."""
    path = OWN / name
    plain = PlainLoop(path).step()  # step 1 runs as in a plain loop
    app = make_app(path)
    async with opened(app) as pilot:
        await press(pilot, "space", "space")
        assert app.is_running and not app.busy
        panel = app.query_one(ErrorPanel)
        assert panel.display and f"{path}:{line}: {what}" in str(panel.render())
        assert "step running" not in status(app)
        assert app.port.session.step_count == 1 and app.port.session.next_phase == "forward"  # step 2 was undone
        assert app.state.params["w"].values == pytest.approx(plain["params"][0], rel=1e-6)
        await press(pilot, "r", "space")
        assert app.port.session.step_count == 1 and not panel.display


class Halt(BaseException):
    """Not an Exception: an `except Exception` lets it through."""


async def test_an_exception_the_step_lets_through_does_not_leave_the_step_running(monkeypatch):
    """Issue 12 case 12: whatever ends a step's job, even a BaseException that is not an Exception and
    not the scenario's, the app posts a final update: the panel says what, and the keys come back."""
    from gdtui.jobs import SessionJobs

    def halt(self, n):
        raise Halt("out of the blue")

    app = make_app(NOT_GATE)
    async with opened(app) as pilot:
        monkeypatch.setattr(SessionJobs, "steps", halt)
        await press(pilot, "space")
        await pilot.pause(0.3)  # past KEYS_DIM_DELAY, when a job still going says "step running…"
        assert not app.busy and "step running" not in status(app)
        assert "gdtui: Halt: out of the blue" in str(app.query_one(ErrorPanel).render())
        monkeypatch.undo()
        await press(pilot, "space")
        assert app.port.session.step_count == 1


# --- case 28: the detail view's gradient after a whole step ----------------------------------


def plain_histogram(values: list, bins: int = 30) -> list[int]:
    """Counts in ``bins`` equal bins from the smallest value to the largest, by torch.histc in float64."""
    g = torch.tensor(values, dtype=torch.float64).reshape(-1)
    return [int(c) for c in torch.histc(g, bins=bins, min=g.min().item(), max=g.max().item())]


@pytest.mark.parametrize("mode", ["optim", "manual"])
async def test_the_detail_of_a_large_tensor_shows_the_gradient_the_step_used(mode):
    """Issue 12 case 28: after whole steps, the detail view of a tensor too large for the record (10,000
    elements) showed an empty gradient histogram, zero_grad having cleared the gradient. It shows the
    gradient the last update used: the same counts as a plain loop's gradient at that step."""
    path = OWN / "large_linear.py"
    plain = PlainLoop(path)
    plain.step(mode)
    grads = plain.step(mode)["grads"][0]  # model.weight's gradient at step 2
    app = make_app(path)
    async with opened(app) as pilot:
        await press(pilot, *(["m"] if mode == "manual" else []), "space", "space")
        assert app.port.session.mode == mode and app.port.session.step_count == 2
        assert app.state.last.grads["weight"].flat is None  # the record holds statistics only
        await press(pilot, "enter")  # the first row: weight
        data = app.screen.data
        assert data.name == "weight" and data.grad_hist is not None
        assert list(data.grad_hist.counts) == plain_histogram(grads)
        assert sum(data.grad_hist.counts) == 100 * 100


# --- case 36: the footer of a modal screen tells the truth -----------------------------------

KEY_NAMES = {"esc": "escape", "?": "question_mark", "enter": "enter"}


def visible_footer(app) -> list:
    """The footer on screen: the modal screen's own, else the one of the screen beneath it."""
    for screen in reversed(app.screen_stack):
        footers = screen.query(Footer)
        if footers:
            return list(footers.first().query("FooterKey"))  # each key it shows
    return []


@pytest.mark.parametrize("keys", [["question_mark"], ["h"], ["G"], ["o"], ["enter"], ["l"], ["e"], ["k"]],
                         ids=["help", "hints", "gradcheck", "optimizer_state", "detail", "lr", "export", "breakpoints"])
async def test_the_footer_of_a_modal_screen_offers_what_its_keys_do(keys):
    """Issue 12 case 36: `q` inside a report screen closed the report while the footer said "q Quit".
    Every key the footer of each modal screen shows does what it says there: a close key closes that
    screen and leaves the app running; nothing on it says Quit."""
    app = make_app(NOT_GATE)
    async with opened(app) as pilot:
        await press(pilot, "space", *keys)
        modal = app.screen
        assert len(app.screen_stack) == 2
        shown = [(k.key_display, k.description) for k in visible_footer(app)]
        assert shown and all(description in ("Close", "Cancel") for _, description in shown), shown
        for key_display, _ in shown:
            for name in key_display.split("/"):
                await press(pilot, KEY_NAMES.get(name, name))
                assert app.is_running and app.screen is not modal, (key_display, name)
                await press(pilot, *keys)  # open it again for the next key
                modal = app.screen
        assert app.port.session.step_count == 1
