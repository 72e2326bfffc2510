"""Every bad scenario in the step-debugger: the app stays open, shows the one-line error, and reset and quit work.

The cases and their messages are those of test_bad_scenarios (the headless
side). A scenario that does not load opens the app with its error, and ``r``
loads the file again once it is fixed; one that fails at step k shows the error
at step k, and ``r`` starts over. The trace stays valid JSON Lines throughout.
"""

from __future__ import annotations

import shutil

import pytest

from gdtui.cli import main
from gdtui.engine.trace import TraceWriter
from gdtui.jobs import make_app
from tests.app.pilot_helpers import NOT_GATE, opened, panel_text, press, settle, status
from tests.bad_cases import CASES
from tests.paths import BAD
from tests.plain_loop import PlainLoop, read_trace

AT_LOAD = [c for c in CASES if not c[3].startswith("step ")]
AT_STEP = [c for c in CASES if c[3].startswith("step ")]


@pytest.mark.parametrize(("name", "status_code", "line", "words"), AT_LOAD, ids=[c[0] for c in AT_LOAD])
async def test_a_scenario_that_does_not_load_is_shown_and_loads_again_once_fixed(name, status_code, line, words, tmp_path):
    path = tmp_path / name
    shutil.copy(BAD / name, path)
    trace_path = tmp_path / "trace.jsonl"
    app = make_app(path, trace=TraceWriter(trace_path))
    async with opened(app) as pilot:
        shown = panel_text(app)
        location = f"{path}:{line}:" if line else f"{path}:"
        assert location in shown and words in shown and "Traceback" not in shown
        assert app.port.session is None and f"could not open {path}" in status(app)
        assert app.check_action("step", ()) is None and app.check_action("run", ()) is None
        await press(pilot, "space", "c")  # nothing to step: the keys do nothing
        assert app.port.session is None and app.is_running

        assert app.check_action("quit", ()) and app.check_action("reset", ())
        shutil.copy(NOT_GATE, path)  # the user fixes the file
        await press(pilot, "r")
        assert app.port.session is not None and panel_text(app) == ""
        await press(pilot, "space")
        assert "step 1" in status(app)
        assert app.state.loss == pytest.approx(PlainLoop(NOT_GATE).step()["loss"], rel=1e-6)
        await pilot.press("q")
    events = read_trace(trace_path)
    assert [e["event"] for e in events] == ["start", "step", "end"]
    assert events[-1]["steps"] == 1


@pytest.mark.parametrize(("name", "status_code", "line", "words"), AT_STEP, ids=[c[0] for c in AT_STEP])
async def test_a_scenario_that_fails_at_step_k_shows_it_and_starts_over_on_reset(name, status_code, line, words, tmp_path):
    path = BAD / name
    k = int(words.split(":")[0].split()[1])  # "step 3: ..." -> 3
    trace_path = tmp_path / "trace.jsonl"
    app = make_app(path, trace=TraceWriter(trace_path))
    async with opened(app) as pilot:
        for _ in range(k):
            await press(pilot, "space")
        shown = panel_text(app)
        if status_code == 3:  # "step 2: loss became NaN/Inf": the app pauses on the tensor, and says how to go on
            tensor = words.split(": ")[1].split()[0]
            # Issue 14: where it began, as tests/engine/test_nan_origin.py finds it with a plain loop; a
            # parameter that starts infinite has no step where it began.
            where = {"nan_at_step_2.py": ", first in the result of torch.log on line 7"}.get(name, "")
            assert f"{tensor} went non-finite (NaN or Inf) at step {k}{where}; b rewinds" in shown
        else:
            assert words in shown and "Traceback" not in shown
        if line:
            assert f"{path}:{line}:" in shown
        # an exception undoes the step it broke; a NaN/Inf step finishes, and the app pauses on it
        assert app.port.session.step_count == (k if status_code == 3 else k - 1)
        assert app.is_running

        await press(pilot, "r")
        assert app.port.session.step_count == 0 and panel_text(app) == ""
        await press(pilot, "space")
        assert app.port.session.step_count == 1
        if k > 1:  # the first step is sound: it equals the plain loop's
            assert app.state.loss == pytest.approx(PlainLoop(path).step()["loss"], rel=1e-6)
        await pilot.press("q")
    events = read_trace(trace_path)  # strict JSON on every line, up to the last finished step
    assert events[-1]["event"] == "end"
    after_reset = events[max(i for i, e in enumerate(events) if e["event"] == "reset"):]
    assert [e["step"] for e in after_reset if e["event"] == "step"] == [1]


async def test_quitting_a_scenario_that_never_loaded_exits_with_status_2(tmp_path):
    trace_path = tmp_path / "trace.jsonl"
    app = make_app(BAD / "syntax_error.py", trace=TraceWriter(trace_path))
    async with opened(app) as pilot:
        await pilot.press("q")
    assert app.return_code == 2
    events = read_trace(trace_path)
    assert events == [{"event": "end", "steps": 0, "reason": "error", "message": app.error}]
    assert "syntax_error.py:5: SyntaxError" in app.error


async def test_a_scenario_that_blocks_while_loading_keeps_the_screen_live_and_q_quits(tmp_path):
    path = tmp_path / "slow_to_load.py"
    path.write_text("import threading\nthreading.Event().wait(30)\n")
    trace_path = tmp_path / "trace.jsonl"
    app = make_app(path, trace=TraceWriter(trace_path))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.3)
        assert f"opening {path}" in status(app) and not app.opened.is_set()
        await pilot.press("q")
    assert not app.is_running and app.return_code == 0  # the user quit; nothing failed
    assert read_trace(trace_path) == [{"event": "end", "steps": 0, "reason": "interrupted"}]


async def test_steps_pressed_while_the_scenario_opens_run_once_it_is_open():
    app = make_app(NOT_GATE)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("space", "space")  # before the worker has opened the scenario
        await app.opened.wait()
        for _ in range(50):
            await settle(pilot)
            if app.port.session.step_count == 2 and not app.busy:
                break
        assert app.port.session.step_count == 2


async def test_a_breakpoint_naming_no_tensor_is_shown_and_the_other_options_still_apply():
    from gdtui.cli import build_parser, configure

    args = build_parser().parse_args([str(NOT_GATE), "--until", 'grad_norm["nope"] < 1', "--break", "loss < 0.1",
                                      "--stop-on-rise", "3", "--no-zero-grad"])
    app = make_app(NOT_GATE, setup=lambda session: configure(session, args))
    async with opened(app):
        s = app.port.session
        assert [c.text for c in s.conditions] == ["loss < 0.1"]
        assert s.rising is not None and s.rising.k == 3 and s.skip_zero_grad
        assert "--until" in panel_text(app) and "no trained tensor 'nope'" in panel_text(app)


@pytest.mark.parametrize(("args", "words"), [
    (["no_such_scenario.py"], "no_such_scenario.py: no such scenario file; check the path"),
    ([str(NOT_GATE), "--device", "tpu"], "--device 'tpu' is not a device; use cpu, cuda, cuda:N or mps"),
])
def test_command_line_mistakes_end_before_the_app_opens(args, words, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words in err


async def test_a_1e8_element_tensor_steps_in_the_app_with_rewind_off_and_a_histogram_detail():
    from gdtui.widgets.detail_screen import DetailScreen

    app = make_app(BAD / "huge_tensor.py")
    async with opened(app) as pilot:
        await press(pilot, "space")
        assert app.state.loss == pytest.approx(1.0)
        await press(pilot, "space")
        assert app.state.loss == pytest.approx(0.25, rel=1e-5)  # w went 0 -> 0.5 (see the scenario)
        assert "rewind is off: one snapshot needs" in status(app)
        assert app.check_action("rewind", ()) is None
        await press(pilot, "enter")
        detail = app.screen
        assert isinstance(detail, DetailScreen)
        assert detail.data.value_hist is not None and detail.data.value.flat is None  # no 1e8 values to the screen
        assert sum(detail.data.value_hist.counts) == 100_000_000
        await pilot.press("escape", "q")
