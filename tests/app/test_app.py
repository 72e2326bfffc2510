"""The step-debugger driven key by key at 80x24: what the session does and what the widgets show.

Numbers are checked against the seed notebook's printed figures (not_gate.py)
or against a plain PyTorch loop written out in the test, never against values
the app produced.
"""

from __future__ import annotations

import io
import json
import shutil

import pytest
import torch
from rich.console import Console
from textual.widgets import Static

from gdtui.engine.summarize import format_number
from gdtui.engine.trace import TraceWriter
from gdtui.jobs import make_app
from gdtui.keys import BINDINGS, markdown_table
from gdtui.widgets.charts import LossChart
from gdtui.widgets.detail_screen import DetailScreen
from gdtui.widgets.error_panel import ErrorPanel
from gdtui.widgets.help_screen import HelpScreen
from gdtui.widgets.loop_panel import LoopPanel
from gdtui.widgets.lr_prompt import LrPrompt
from gdtui.widgets.param_table import ParamTable
from tests.app.pilot_helpers import NOT_GATE, OWN, SCENARIOS, opened, press, settle, status, table_text, text, until

# --- stepping -------------------------------------------------------------------------


async def test_five_steps_of_not_gate_show_the_notebook_numbers():
    # The notebook prints w = 2.2432, b = 1.7689 after five iterations.
    app = make_app(NOT_GATE)
    async with opened(app) as pilot:
        await press(pilot, "space", "n", "space", "space", "space")
        assert app.port.session.step_count == 5
        shown = table_text(app)
        assert "2.2432" in shown and "1.7689" in shown
        assert "step 5" in status(app)
        assert "loss 0.49559" in status(app)  # the notebook's 5th loss, 0.4955888


async def test_manual_mode_gives_the_same_numbers():
    app = make_app(NOT_GATE)
    async with opened(app) as pilot:
        await press(pilot, "m")
        assert app.port.session.mode == "manual"
        assert "mode manual" in status(app)
        assert "p -= lr * p.grad" in text(app, LoopPanel)
        assert "p.grad.zero_()" in text(app, LoopPanel)
        await press(pilot, *["space"] * 5)
        shown = table_text(app)
        assert "2.2432" in shown and "1.7689" in shown
        await press(pilot, "m")
        assert "optimizer.step()" in text(app, LoopPanel)
        assert "optimizer.zero_grad()" in text(app, LoopPanel)


async def test_manual_mode_on_momentum_sgd_follows_vanilla_sgd():
    # The plain loop: vanilla SGD with the optimizer's lr, no momentum.
    x = torch.tensor([1.0, 2.0, 3.0, 4.0])
    y = torch.tensor([3.0, 5.0, 7.0, 9.0])
    a = torch.tensor(0.5, requires_grad=True)
    c = torch.tensor(-0.5, requires_grad=True)
    for _ in range(4):
        loss = ((a * x + c - y) ** 2).mean()
        loss.backward()
        with torch.no_grad():
            a -= 0.01 * a.grad
            c -= 0.01 * c.grad
        a.grad.zero_()
        c.grad.zero_()
    app = make_app(OWN / "momentum.py")
    async with opened(app) as pilot:
        await press(pilot, "m", "space", "space", "space", "space")
        live = dict(zip(app.port.session.loop.names, app.port.session.loop.tensors))
        assert torch.equal(live["a"], a.detach()) and torch.equal(live["c"], c.detach())
        shown = table_text(app)
        assert format_number(a.item()) in shown and format_number(c.item()) in shown
        assert "ignores SGD's momentum=0.9" in status(app)


async def test_phase_key_walks_the_loop_panel_line_by_line():
    app = make_app(NOT_GATE)
    async with opened(app) as pilot:
        marked = []
        for _ in range(5):
            line = next(row for row in text(app, LoopPanel).splitlines() if row.startswith("▶"))
            marked.append(line.split()[1])
            await press(pilot, "s")
        assert marked == ["pred", "loss", "loss.backward()", "optimizer.step()", "optimizer.zero_grad()"]
        assert app.port.session.step_count == 1
        assert "next: forward" in status(app)
        assert "2.8265" in table_text(app)  # the notebook's w after one iteration


async def test_rewind_returns_the_screen_to_that_step():
    app = make_app(NOT_GATE)
    async with opened(app) as pilot:
        assert app.check_action("rewind", ()) is None  # dimmed at step 0
        await press(pilot, "space", "space")
        at_two = (table_text(app), text(app, LoopPanel), app.query_one(LossChart).frame.payload)
        await press(pilot, "space", "b")
        assert app.port.session.step_count == 2
        assert (table_text(app), text(app, LoopPanel), app.query_one(LossChart).frame.payload) == at_two
        assert "rewind 2" in status(app)
        await press(pilot, "left", "left")
        assert app.port.session.step_count == 0
        assert app.check_action("rewind", ()) is None


async def test_reset_rereads_the_file_and_keeps_the_session_when_the_edit_breaks(tmp_path):
    path = tmp_path / "not_gate.py"
    shutil.copy(NOT_GATE, path)
    app = make_app(path)
    async with opened(app) as pilot:
        await press(pilot, "space")
        source = path.read_text()
        path.write_text(source.replace("w = torch.tensor([[3]]", "w = torch.tensor([[4]]"))
        await press(pilot, "r")
        assert app.port.session.step_count == 0
        assert app.query_one(ParamTable).get_row("w")[2].plain == "4"
        path.write_text(source + "\ndef broken(:\n")
        await press(pilot, "space", "r")
        panel = app.query_one(ErrorPanel)
        assert panel.display and "SyntaxError" in str(panel.render()) and "not_gate.py:" in str(panel.render())
        assert app.port.session.step_count == 1  # the previous session remains
        await press(pilot, "space")
        assert app.port.session.step_count == 2 and not panel.display


async def test_grad_source_key_uses_the_scenarios_grad_fn():
    app = make_app(SCENARIOS / "fit_2x.py")
    async with opened(app) as pilot:
        await press(pilot, "g")
        assert app.port.session.grad_source == "grad_fn"
        assert "grad grad_fn" in status(app)
        assert "grads = grad_fn()" in text(app, LoopPanel)
        await press(pilot, "space")
        assert app.query_one(ParamTable).get_row("w")[2].plain == "1.2"  # the notebook's part 1, step 1
        await press(pilot, "g")
        assert "loss.backward()" in text(app, LoopPanel)


async def test_keys_that_cannot_act_are_dimmed():
    app = make_app(NOT_GATE)
    async with opened(app) as pilot:
        assert app.check_action("grad_source", ()) is None  # no grad_fn here
        app.busy = True  # as while a step runs
        for action in ("mode", "phase", "reset", "rewind", "detail", "zero_grad", "gradcheck", "compare",
                       "optimizer_state", "export"):
            assert app.check_action(action, ()) is None, action
        assert app.check_action("step", ()) is True  # queued, not refused
        assert app.check_action("breakpoints", ()) is True and app.check_action("hints", ()) is True
        app.busy = False
        await pilot.pause()
        assert app.check_action("mode", ()) is True


async def test_learning_rate_keys_and_prompt():
    app = make_app(NOT_GATE)
    async with opened(app) as pilot:
        await press(pilot, "plus")
        assert app.port.session.lr == 20 and "lr 20" in status(app)
        await press(pilot, "minus", "minus")
        assert app.port.session.lr == 5 and "lr 5" in status(app)
        await press(pilot, "l")
        assert isinstance(app.screen, LrPrompt)
        await press(pilot, *["backspace"] * 3, "x", "enter")
        assert isinstance(app.screen, LrPrompt)  # bad input: says why, changes nothing
        assert "not a number" in str(app.screen.query_one("#lr-why").render())
        assert app.port.session.lr == 5
        await press(pilot, "backspace", "0", ".", "5", "enter")
        assert not isinstance(app.screen, LrPrompt)
        assert app.port.session.lr == 0.5 and "lr 0.5" in status(app)
        await press(pilot, "l", "escape")
        assert app.port.session.lr == 0.5
        await press(pilot, "space")
        assert app.port.session.last.lr == 0.5  # taken from the next step on


async def test_chart_views_cycle_and_skip_what_does_not_apply():
    app = make_app(SCENARIOS / "quadratic.py")  # an objective: no data, so no model view
    async with opened(app) as pilot:
        await press(pilot, "space", "space", "space")
        chart = app.query_one(LossChart)
        assert chart.frame.view == "loss" and [round(v, 4) for v in chart.frame.payload.losses] == [36.0, 23.04, 14.7456]
        await press(pilot, "v")
        assert chart.frame.view == "landscape"
        path = chart.frame.payload.path
        assert [round(p[0], 4) for p in path] == [5.0, 3.8, 2.84, 2.072]  # the notebook's x
        await press(pilot, "v")
        assert chart.frame.view == "loss"
        await press(pilot, "L")
        assert chart.log_axis
    app = make_app(SCENARIOS / "logistic_regression.py")  # two features, binary target
    async with opened(app) as pilot:
        await press(pilot, "v")
        chart = app.query_one(LossChart)
        assert chart.frame.view == "fit" and chart.frame.payload.kind == "boundary"
        assert app.views == ("loss", "fit")


async def test_a_500_tensor_table_updates_the_rows_in_sight_and_the_others_as_they_scroll_in():
    from tests.plain_loop import PlainLoop

    app = make_app(OWN / "deep_mlp_500.py")
    async with opened(app) as pilot:
        table = app.query_one(ParamTable)
        assert len(table.names) == 500
        updated = []
        update_cell = table.update_cell
        table.update_cell = lambda row, *args, **kwargs: (updated.append(row), update_cell(row, *args, **kwargs))[1]
        await press(pilot, "space")
        in_sight = set(table.names[: table.size.height])
        assert updated and set(updated) <= in_sight
        last = table.names[-1]
        assert str(table.get_row(last)[3]) == "—"  # out of sight: still step 0's (no gradient yet)

        plain = PlainLoop(OWN / "deep_mlp_500.py").step()
        grad_norm = torch.tensor(plain["grads"][-1]).norm().item()
        table.move_cursor(row=499)  # scrolls the last row into sight
        await settle(pilot)
        assert str(table.get_row(last)[3]) == f"‖{format_number(grad_norm, 3)}‖"


async def test_enter_opens_the_detail_of_the_selected_tensor():
    app = make_app(NOT_GATE)
    async with opened(app) as pilot:
        await press(pilot, "space", "down", "enter")
        screen = app.screen
        assert isinstance(screen, DetailScreen) and screen.data.name == "b"
        assert screen.data.grad is not None and screen.data.value_hist is None
        await press(pilot, "space")  # the session's keys wait while a screen is open
        assert app.port.session.step_count == 1
        await press(pilot, "escape")
        assert not isinstance(app.screen, DetailScreen)
    app = make_app(OWN / "big_tensor.py")
    async with opened(app) as pilot:
        await press(pilot, "space", "enter")
        hist = app.screen.data.value_hist
        assert sum(hist.counts) == 64 * 64
        assert app.screen.data.grad_hist is not None


async def test_help_lists_every_binding():
    app = make_app(NOT_GATE)
    async with opened(app) as pilot:
        await press(pilot, "question_mark")
        assert isinstance(app.screen, HelpScreen)
        console = Console(width=76, record=True, file=io.StringIO())
        console.print(app.screen.query_one("#keys", Static).content)  # the Rich table it shows
        shown = " ".join(console.export_text().split())
        for binding in BINDINGS:
            assert " ".join(binding.tooltip.split()) in shown, binding.id
        assert "NOT gate" in str(app.screen.query_one("#scenario-title", Static).render())
        await press(pilot, "escape")
        assert not isinstance(app.screen, HelpScreen)
    table = markdown_table()
    assert all(b.tooltip in table for b in BINDINGS)


# --- errors, NaN, run mode, trace ----------------------------------------------------------


async def test_a_step_that_raises_shows_the_error_panel_and_the_app_lives_on():
    app = make_app(OWN / "raises_at_step_3.py")
    async with opened(app) as pilot:
        await press(pilot, "space", "space", "space")
        panel = app.query_one(ErrorPanel)
        shown = str(panel.render())
        assert panel.display
        assert "raises_at_step_3.py:21" in shown and "the loss refuses to run a third step" in shown
        assert app.port.session.step_count == 2  # rolled back to the start of step 3
        await press(pilot, "r")
        assert app.port.session.step_count == 0 and not panel.display
        await pilot.press("q")
    assert app.return_code in (0, None)


async def test_run_mode_steps_until_paused_and_traces_every_step(tmp_path):
    trace_path = tmp_path / "trace.jsonl"
    trace = TraceWriter(trace_path)
    app = make_app(SCENARIOS / "logistic_regression.py", trace=trace)
    async with opened(app) as pilot:
        # While a run goes on the app is never idle, and Pilot.press waits up to 2 s for
        # idleness after each key; simulate_key sends the same key event without waiting.
        app.simulate_key("c")
        await until(pilot, lambda: "running" in status(app) and app.port.session.step_count > 0)
        assert app.running and app.check_action("mode", ()) is None
        app.simulate_key("question_mark")  # the run goes on under a modal screen
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        app.simulate_key("escape")
        await until(pilot, lambda: not isinstance(app.screen, HelpScreen))
        app.simulate_key("plus")  # lr takes effect from the next step
        await until(pilot, lambda: app.port.session.last.lr == 2.0)
        assert app.running
        app.simulate_key("space")  # space pauses too
        await until(pilot, lambda: not app.running)
        await settle(pilot)
        assert not app.busy
        steps = app.port.session.step_count
        assert steps > 1 and f"step {steps}" in status(app)
        await press(pilot, "m")  # works again once paused
        await pilot.press("q")
    trace.close()
    lines = [json.loads(line) for line in trace_path.read_text().splitlines()]
    assert [e["event"] for e in lines] == ["start"] + ["step"] * steps + ["end"]
    assert [e["step"] for e in lines[1:-1]] == list(range(1, steps + 1))
    assert lines[-1] == {"event": "end", "steps": steps, "reason": "interrupted"}


async def test_a_nan_pauses_the_run_and_names_the_tensor():
    app = make_app(OWN / "diverges.py")
    async with opened(app) as pilot:
        app.simulate_key("c")
        await until(pilot, lambda: app.port.session.step_count > 0 and not app.running)
        await settle(pilot)
        record = app.port.session.last
        assert record.nonfinite is not None
        shown = str(app.query_one(ErrorPanel).render())
        assert f"{record.nonfinite} went non-finite" in shown and f"step {record.step}" in shown


async def test_mode_lr_rewind_and_reset_reach_the_trace(tmp_path):
    trace_path = tmp_path / "trace.jsonl"
    trace = TraceWriter(trace_path)
    app = make_app(NOT_GATE, trace=trace)
    async with opened(app) as pilot:
        await press(pilot, "space", "m", "plus", "space", "b", "space", "r", "space")
        await pilot.press("ctrl+c")
    trace.close()
    events = [json.loads(line) for line in trace_path.read_text().splitlines()]
    assert [e["event"] for e in events] == ["start", "step", "step", "rewind", "step", "reset", "start", "step", "end"]
    assert (events[1]["mode"], events[1]["lr"]) == ("optim", 10)
    assert (events[2]["mode"], events[2]["lr"]) == ("manual", 20)
    assert events[3] == {"event": "rewind", "step": 1} and events[4]["step"] == 2
    assert events[7]["step"] == 1  # numbering restarts after a reset, under a new start line


@pytest.mark.parametrize("key", ["q", "ctrl+c"])
async def test_quit_keys_end_the_app(key):
    app = make_app(NOT_GATE)
    async with opened(app) as pilot:
        await pilot.press(key)
        await pilot.pause()
        assert not app.is_running


async def test_reset_frees_the_old_scenarios_tensors():
    import gc
    import weakref

    app = make_app(NOT_GATE)
    async with opened(app) as pilot:
        await settle(pilot)
        await pilot.pause(0.1)  # the app has frozen its start-up objects by now
        old = weakref.ref(app.port.session.loop.tensors[0])
        await press(pilot, "space", "r")
        gc.collect()
        assert old() is None


async def test_the_grad_norm_column_comes_back_once_the_wide_cells_are_gone():
    app = make_app(OWN / "diverges.py")
    async with opened(app) as pilot:
        table = app.query_one(ParamTable)
        while not (app.state.last and app.state.last.nonfinite):
            await press(pilot, "space")
        # "μnan σnan ⚠nan…" is too wide for 80 columns with every column: ‖grad‖ goes first
        assert "gnorm" not in [str(k.value) for k in table.columns]
        await press(pilot, "b")
        assert "gnorm" in [str(k.value) for k in table.columns]
