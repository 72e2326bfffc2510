"""The step-debugger's breakpoint, diagnostic, zero_grad, export and queued-step keys, at 80x24.

References are plain PyTorch loops written out here or in tests/plain_loop.py's PlainLoop,
and the numbers the scenarios' docstrings and the seed notebooks print; never
values the app produced.
"""

from __future__ import annotations

import csv
import json
import re
import tempfile
from pathlib import Path

import pytest
import torch
from textual.widgets import Input, OptionList

from gdtui.engine.summarize import format_number
from gdtui.jobs import make_app
from gdtui.widgets.breakpoint_screen import BreakpointScreen
from gdtui.widgets.error_panel import ErrorPanel
from gdtui.widgets.export_prompt import ExportPrompt
from gdtui.widgets.loop_panel import LoopPanel
from gdtui.widgets.report_screen import ReportScreen, report_text, wrap_fields
from tests.app.pilot_helpers import NOT_GATE, OWN, SCENARIOS, opened, press, settle, status, table_text, text, until
from tests.plain_loop import PlainLoop


def report(app) -> str:
    screen = app.screen
    assert isinstance(screen, ReportScreen), screen
    body = screen.query_one("#report-error" if screen.error else "#report-body")
    return str(body.render())


async def submit(pilot, value: str) -> None:
    """Type ``value`` into the open screen's input (set at once: the keys are Input's own) and press enter."""
    pilot.app.screen.query_one(Input).value = value
    await press(pilot, "enter")


async def test_breakpoint_pauses_the_run_where_the_plain_loop_first_meets_it():
    plain = PlainLoop(NOT_GATE)
    for step in range(1, 20):  # noqa: B007 - the step the loop breaks at is the answer
        w = torch.tensor(plain.step()["params"][0])
        if w.norm() < 2.5:
            break
    assert step == 4  # the docstring: w = 2.3969853 after step 4
    app = make_app(NOT_GATE)
    async with opened(app) as pilot:
        await press(pilot, "k")
        assert isinstance(app.screen, BreakpointScreen)
        await submit(pilot, "los < 1")
        assert "unknown name 'los'" in str(app.screen.query_one("#condition-why").render())
        assert app.port.session.conditions == ()
        await submit(pilot, 'param_norm["w"] < 2.5')
        assert [c.text for c in app.port.session.conditions] == ['param_norm["w"] < 2.5']
        assert 'param_norm["w"] < 2.5' in str(app.screen.query_one(OptionList).get_option_at_index(1).prompt)
        await press(pilot, "escape")
        assert "1 breakpoint" in status(app)
        app.simulate_key("c")
        await until(pilot, lambda: app.port.session.step_count > 0 and not app.running)
        await settle(pilot)
        assert app.port.session.step_count == step
        assert format_number(w[0, 0].item(), 5) in table_text(app)
        assert 'param_norm["w"] < 2.5 holds after step 4' in str(app.query_one(ErrorPanel).render())
        # the list: enter switches the rising-loss condition, delete removes a condition
        await press(pilot, "k", "tab", "enter")
        assert app.port.session.rising is not None and app.port.session.rising.k == 3
        await press(pilot, "down", "delete")
        assert app.port.session.conditions == ()
        await press(pilot, "up", "enter", "escape")
        assert app.port.session.rising is None and "breakpoint" not in status(app)


async def test_rising_loss_breakpoint_pauses_at_the_fourth_step():
    # lr 1.05 on x² + 2x + 1 from x = 5: x - 1.05·(2x + 2) overshoots further each step, so the
    # loss rises every step; "rose 3 steps in a row" first holds once steps 1..4 are done.
    x, losses = 5.0, []
    for _ in range(4):
        losses.append(x * x + 2 * x + 1)
        x -= 1.05 * (2 * x + 2)
    assert losses == sorted(losses) and len(set(losses)) == 4
    app = make_app(SCENARIOS / "quadratic.py", lr=1.05)
    async with opened(app) as pilot:
        await press(pilot, "k", "tab", "enter", "escape")
        app.simulate_key("c")
        await until(pilot, lambda: app.port.session.step_count > 0 and not app.running)
        await settle(pilot)
        assert app.port.session.step_count == 4
        assert "loss rose 3 steps in a row holds after step 4" in str(app.query_one(ErrorPanel).render())


async def test_gradient_check_names_the_hand_written_gradients_factor():
    # fit_2x.py's grad_fn is 2·Σx(ŷ−y) over 4 samples: 4 times the MSE gradient (seed 001, part 1).
    app = make_app(SCENARIOS / "fit_2x.py")
    async with opened(app) as pilot:
        await press(pilot, "G")
        shown = report(app)
        assert "w  ≈4× autograd" in shown and shown.count(" ok") == 1
        assert "gradient check (G)" in str(app.screen.query_one("#report-title").render())
        await press(pilot, "escape")
        assert not isinstance(app.screen, ReportScreen) and app.port.session.step_count == 0


async def test_a_diagnostic_that_cannot_run_says_why_in_its_screen(tmp_path):
    path = tmp_path / "to_float.py"
    path.write_text(
        "import torch\nconv = torch.nn.Conv2d(1, 2, 3)\n"
        "def model(x):\n    x = x.float()\n    return conv(x).mean((1, 2, 3))\n"
        "loss_fn = torch.nn.MSELoss()\ndata = (torch.randn(4, 1, 5, 5), torch.randn(4))\n"
        "optimizer = torch.optim.SGD(conv.parameters(), lr=0.1)\n"
    )
    app = make_app(path)
    async with opened(app) as pilot:
        await press(pilot, "G")
        assert "to_float.py:4:" in report(app) and "makes a float32 tensor" in report(app)
        await press(pilot, "escape", "space")
        assert app.port.session.step_count == 1  # the session goes on


async def test_a_gradient_check_shows_its_progress_and_escape_cancels_it(tmp_path):
    """Issue 12 case 34: the check showed nothing while it ran, and could not be stopped. It now says
    "tensor k of n", escape cancels it, a step pressed meanwhile is queued, and the session is as it
    was: its steps equal a plain loop's."""
    path = tmp_path / "slow.py"
    path.write_text(
        "import time\nimport torch\ntorch.manual_seed(0)\n"
        "net = torch.nn.Sequential(*[torch.nn.Linear(3, 3) for _ in range(6)])\n"
        "def model(x):  # a function: evaluated one perturbation at a time\n    time.sleep(0.05)\n    return net(x)\n"
        "loss_fn = torch.nn.MSELoss()\n"
        "data = (torch.randn(5, 3), torch.randn(5, 3))\n"
        "optimizer = torch.optim.SGD(net.parameters(), lr=0.1)\n"
    )
    app = make_app(path)
    async with opened(app) as pilot:
        await pilot.press("G")
        await until(pilot, lambda: re.search(r"tensor \d+ of 12", status(app)))
        assert "esc cancels" in status(app)
        await pilot.press("escape")
        await until(pilot, lambda: not app.busy)
        await settle(pilot)
        assert not isinstance(app.screen, ReportScreen)
        assert "gradient check cancelled" in text(app, ErrorPanel)
        assert app.port.session.step_count == 0
        await pilot.press("G")
        await until(pilot, lambda: re.search(r"tensor \d+ of 12", status(app)))
        await pilot.press("space")  # queued behind the check, and run once it is cancelled
        await pilot.press("escape")
        await until(pilot, lambda: not app.busy and app.port.session.step_count == 1)
        plain = PlainLoop(path)
        assert app.port.session.last.loss == plain.step()["loss"]


def test_verdicts_are_marked_and_long_lines_break_between_fields():
    lines = ["gradient check", "  w  4/4 entries  max abs err 0  ok", "  b  2 at a kink  at a kink",
             "  v  1/1 entries  mismatch", "  u  ≈0.25× autograd  (max abs diff 3)"]
    text = report_text(lines, verdicts=True)
    marked = {text.plain[s.start:s.end]: str(s.style) for s in text.spans}
    assert marked == {"gradient check": "bold", "ok": "bold green", "2 at a kink": "bold yellow",
                      "at a kink": "bold yellow", "mismatch": "bold reverse red", "≈0.25× autograd": "bold reverse red"}
    assert wrap_fields("  0.weight  16/524288 entries  max abs err 4.5e-11  ok", 40) == [
        "  0.weight  16/524288 entries", "      max abs err 4.5e-11  ok"]


async def test_compare_and_optimizer_state_on_momentum_match_a_plain_loop():
    x = torch.tensor([1.0, 2.0, 3.0, 4.0])
    y = torch.tensor([3.0, 5.0, 7.0, 9.0])
    a = torch.tensor(0.5, requires_grad=True)
    c = torch.tensor(-0.5, requires_grad=True)
    opt = torch.optim.SGD([a, c], lr=0.01, momentum=0.9)
    for _ in range(2):
        opt.zero_grad()
        ((a * x + c - y) ** 2).mean().backward()
        before = a.detach().clone()
        opt.step()
        if _ == 0:
            buffer = opt.state[a]["momentum_buffer"].item()
    optim_delta, manual_delta = (a.detach() - before).item(), -0.01 * a.grad.item()
    app = make_app(OWN / "momentum.py")
    async with opened(app) as pilot:
        await press(pilot, "space", "o")
        assert f"momentum_buffer = {format_number(buffer)}" in report(app)
        await press(pilot, "escape", "M")
        shown = report(app)
        assert f"manual Δ {format_number(manual_delta)}" in shown and f"optim Δ {format_number(optim_delta)}" in shown
        assert "momentum=0.9" in shown
        await press(pilot, "escape")
        assert app.port.session.step_count == 1


async def test_hints_screen_lists_every_hint_of_the_state():
    app = make_app(SCENARIOS / "dead_relu.py")
    async with opened(app) as pilot:
        await press(pilot, "space", "space", "space", "h")
        shown = report(app)
        hints = app.port.session.last.hints
        assert len(hints) > 1 and shown.startswith("! ") and shown.count("\n! ") == len(hints) - 1
        assert "unit 1 died in step 2's update" in shown  # the dead_relu.py docstring
        assert f"(+{len(hints) - 1} more)" in status(app)
        await press(pilot, "escape")


async def test_skipping_zero_grad_adds_the_gradients_up():
    plain = PlainLoop(NOT_GATE)
    w, b = plain.tensors
    total = [torch.zeros_like(w), torch.zeros_like(b)]
    for _ in range(3):
        x, y = plain.ns["data"]
        grads = torch.autograd.grad(plain.ns["loss_fn"](plain.ns["model"](x), y), [w, b])
        total = [t + g for t, g in zip(total, grads)]
        with torch.no_grad():
            w.grad, b.grad = total[0].clone(), total[1].clone()
        plain.opt.step()  # no zero_grad
    app = make_app(NOT_GATE)
    async with opened(app) as pilot:
        await press(pilot, "z")
        assert app.port.session.skip_zero_grad and "zero_grad skipped" in status(app)
        loop = text(app, LoopPanel)
        assert "# optimizer.zero_grad()" in loop and "skipped: grads add up" in loop
        await press(pilot, "space", "space", "space")
        record = app.port.session.last
        assert [g.values for g in record.grads.values()] == [t.tolist() for t in total]
        assert [p.values for p in record.params.values()] == [w.tolist(), b.tolist()]
        await press(pilot, "z")
        assert not app.port.session.skip_zero_grad and "zero_grad skipped" not in status(app)
        assert "# optimizer" not in text(app, LoopPanel)


async def test_export_writes_the_current_timeline_and_a_bad_path_loses_nothing(tmp_path):
    plain = PlainLoop(NOT_GATE)
    losses = [plain.step()["loss"] for _ in range(2)]
    app = make_app(NOT_GATE)
    async with opened(app) as pilot:
        log = app.port.trace.path
        await press(pilot, "space", "space", "space", "b", "e")  # three steps, one rewound
        assert isinstance(app.screen, ExportPrompt)
        await submit(pilot, str(tmp_path / "steps.csv"))
        panel = str(app.query_one(ErrorPanel).render())
        assert f"wrote 2 steps to {tmp_path / 'steps.csv'}" in panel
        rows = list(csv.DictReader((tmp_path / "steps.csv").open()))
        assert [float(r["loss"]) for r in rows] == losses and [r["step"] for r in rows] == ["1", "2"]
        await press(pilot, "e")
        await submit(pilot, str(tmp_path / "steps.jsonl"))
        events = [json.loads(line) for line in (tmp_path / "steps.jsonl").read_text().splitlines()]
        assert [e["event"] for e in events] == ["start", "step", "step", "end"]
        await press(pilot, "e")
        await submit(pilot, str(tmp_path / "no" / "such" / "folder.csv"))
        panel = str(app.query_one(ErrorPanel).render())
        assert "export failed" in panel and "cannot write" in panel
        await press(pilot, "e")
        await submit(pilot, str(log))  # onto the log itself: refused, the log stays whole
        assert "is the trace log being written" in str(app.screen.query_one("#export-why").render())
        await press(pilot, "escape", "space")
        assert app.port.session.step_count == 3 and not app.query_one(ErrorPanel).display
        assert log.exists() and log.parent == Path(tempfile.gettempdir())
        await pilot.press("q")
    assert not log.exists()  # the temporary trace log goes with the app


async def test_step_presses_during_a_step_queue_up():
    # slow_step.py is the NOT gate with a 0.15 s forward: w, b after step 3 are 2.5405035, 1.6586863.
    app = make_app(OWN / "slow_step.py")
    async with opened(app) as pilot:
        for _ in range(3):
            app.simulate_key("space")
        await until(pilot, lambda: app.pending == 2)
        assert "+2 queued" in status(app)
        assert app.check_action("step", ()) is True and app.check_action("rewind", ()) is None
        await until(pilot, lambda: app.port.session.step_count == 3 and not app.busy)
        await settle(pilot)
        assert "step 3" in status(app) and "queued" not in status(app)
        shown = table_text(app)
        assert "2.5405" in shown and "1.6587" in shown


async def test_the_export_log_keeps_small_tensors_whole_and_summarises_large_ones(tmp_path):
    plain = PlainLoop(OWN / "big_tensor.py")  # weight 64x64 (4096 elements), bias 64
    steps = [plain.step() for _ in range(2)]
    app = make_app(OWN / "big_tensor.py")
    async with opened(app) as pilot:
        await press(pilot, "space", "space", "e")
        await submit(pilot, str(tmp_path / "steps.jsonl"))
        await press(pilot, "e")
        await submit(pilot, str(tmp_path / "steps.csv"))
        await pilot.press("q")
    events = [json.loads(line) for line in (tmp_path / "steps.jsonl").read_text().splitlines()]
    last = [e for e in events if e["event"] == "step"][-1]
    names = list(last["params"])
    weight, bias = last["params"][names[0]], last["params"][names[1]]
    assert bias == steps[-1]["params"][1]  # 64 elements: every value, as tolist() gives it
    assert isinstance(weight, dict) and weight["shape"] == [64, 64]  # 4096: the summary
    expected_norm = torch.tensor(steps[-1]["params"][0]).norm().item()
    assert weight["norm"] == pytest.approx(expected_norm, rel=1e-6)
    rows = list(csv.DictReader((tmp_path / "steps.csv").open()))
    grad_norm = torch.tensor(steps[-1]["grads"][0]).norm().item()
    assert float(rows[-1][f"grad_norm[{names[0]}]"]) == pytest.approx(grad_norm, rel=1e-6)


async def test_an_export_says_when_the_log_left_tensors_out(tmp_path, monkeypatch):
    """The app's own log capped at 1500 bytes (512 MB in use): ten steps of not_gate pass it, and
    the export says from which step on it has no tensors and how to keep them; every loss is there."""
    monkeypatch.setattr("gdtui.engine.trace.EXPORT_LOG_TENSOR_BYTES", 1500)
    plain = PlainLoop(NOT_GATE)
    losses = [plain.step()["loss"] for _ in range(10)]
    app = make_app(NOT_GATE)
    async with opened(app) as pilot:
        await press(pilot, *["space"] * 10, "e")
        await submit(pilot, str(tmp_path / "steps.csv"))
        panel = str(app.query_one(ErrorPanel).render())
        assert "wrote 10 steps" in panel and "kept no tensors from step" in panel and "--trace FILE" in panel
    assert [float(r["loss"]) for r in csv.DictReader((tmp_path / "steps.csv").open())] == losses
