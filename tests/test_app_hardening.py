"""Issue 12, the screen's cases: user text is never markup, keys after quit, a scenario's
KeyboardInterrupt, the detail view's gradient, and modal screens' footers.

Driven key by key with Pilot at 80x24, like test_app. Numbers are checked against a
plain PyTorch loop written out here, never against values the app produced.
"""

from __future__ import annotations

import pytest

from textual import events
from textual.widgets import Static

from gdtui.app import make_app
from gdtui.widgets.help_screen import HelpScreen
from gdtui.widgets.lr_prompt import LrPrompt
from test_app import NOT_GATE, OWN, opened, press

# --- case 10: user text is never markup --------------------------------------------------


async def test_brackets_typed_in_the_lr_prompt_give_one_line_not_a_markup_error():
    """Issue 12 case 10: `l`, then `[/]` and Enter: one line saying why, the prompt stays, the app lives."""
    app = make_app(NOT_GATE)
    async with opened(app) as pilot:
        await press(pilot, "l", *["backspace"] * 8, "[", "/", "]", "enter")
        assert app.is_running and isinstance(app.screen, LrPrompt)
        why = str(app.screen.query_one("#lr-why", Static).render())
        assert why == "'[/]' is not a number; type one such as 0.01 or 1e-3"
        assert app.session.lr == 10  # not_gate's own lr: nothing changed
        await press(pilot, "escape", "space")
        assert app.session.step_count == 1


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

