"""Tensors gdtui cannot step: sparse gradients, complex numbers, the meta device (issue 12 cases 7, 13 and 14).

Each is one line naming the file, the line and the fix, exit status 2, before any
step where the load can tell; in the step-debugger the line shows in the panel
and the app stays open. References: a plain loop over the scenario's own objects.
"""

from __future__ import annotations

import shutil
import warnings

import pytest
from test_app import opened, press, status
from test_app_bad_scenarios import panel_text

from conftest import BAD, SCENARIOS, PlainLoop, read_trace
from gdtui.cli import main
from gdtui.engine import ScenarioError, Session
from gdtui.jobs import make_app

# file, the line the error names, words the message must hold; all refused when the file loads
AT_LOAD = [
    ("sparse_embedding.py", 6, "0.weight gets sparse gradients (nn.Embedding(sparse=True) makes them); "
                               "gdtui steps dense gradients only: use sparse=False"),
    ("complex_loss.py", 9, "loss() returned a complex loss (complex64); gradient descent needs a real one"),
    ("complex_params.py", 4, "trained tensor `z` is complex (complex64); gdtui trains real tensors only"),
    ("meta_model.py", 4, "the model's 2.weight is on the meta device, which holds shapes but no values"),
    ("meta_tensor.py", 4, "trained tensor `w` is on the meta device, which holds a shape but no values"),
    ("meta_data.py", 6, "data is on the meta device, which holds shapes but no values"),
]


@pytest.mark.parametrize(("name", "line", "words"), AT_LOAD, ids=[c[0] for c in AT_LOAD])
def test_a_tensor_gdtui_cannot_step_is_one_line_at_load(name, line, words, tmp_path, capsys):
    """Issue 12 cases 7, 13 and 14: sparse grads, complex tensors and meta tensors gave tracebacks."""
    path = BAD / name
    trace = tmp_path / "t.jsonl"
    assert main([str(path), "--headless", "--steps", "3", "--trace", str(trace)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1 and "Traceback" not in captured.err
    assert captured.err.startswith(f"{path}:{line}: ") and words in captured.err
    assert read_trace(trace)[-1] == {"event": "end", "steps": 0, "reason": "error", "message": captured.err.strip()}
    with pytest.raises(ScenarioError, match="sparse|complex|meta"):
        Session(path)


def test_compare_on_complex_parameters_is_the_load_error_without_a_warning(capsys):
    """Issue 12 case 13: `--compare` summarised complex tensors by modulus and leaked "Casting complex values"."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main([str(BAD / "complex_params.py"), "--headless", "--compare"]) == 2
    assert not [w for w in caught if "complex" in str(w.message).lower()]
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "trained tensor `z` is complex" in err


def test_batches_on_the_meta_device_stop_the_step_that_reads_them(tmp_path, capsys):
    """Issue 12 case 14: a meta batch at step 2 raised NotImplementedError; now it is step 2's one-line error."""
    path = BAD / "meta_batches.py"
    trace = tmp_path / "t.jsonl"
    assert main([str(path), "--headless", "--steps", "3", "--trace", str(trace)]) == 2
    err = capsys.readouterr().err
    assert err == f"{path}:6: step 2: data yielded a batch on the meta device, which holds shapes but no values; yield tensors with values\n"
    steps = [e for e in read_trace(trace) if e["event"] == "step"]
    assert [s["loss"] for s in steps] == pytest.approx([PlainLoop(path).step()["loss"]], rel=1e-7)


@pytest.mark.parametrize(("name", "line", "words"), AT_LOAD[:3], ids=[c[0] for c in AT_LOAD[:3]])
async def test_the_step_debugger_shows_the_line_and_loads_again_once_fixed(name, line, words, tmp_path):
    """Issue 12 cases 7 and 13: a sparse model showed "step running…" forever; a complex loss left a traceback."""
    path = tmp_path / name
    shutil.copy(BAD / name, path)
    app = make_app(path)
    async with opened(app) as pilot:
        shown = panel_text(app)
        assert f"{path}:{line}: " in shown and words in shown and "Traceback" not in shown
        assert app.port.session is None and app.is_running
        shutil.copy(SCENARIOS / "not_gate.py", path)  # the user fixes the file
        await press(pilot, "r", "space")
        assert "step 1" in status(app) and panel_text(app) == ""
        assert app.state.loss == pytest.approx(PlainLoop(SCENARIOS / "not_gate.py").step()["loss"], rel=1e-6)


async def test_a_meta_batch_in_the_step_debugger_is_shown_and_the_session_stays_usable():
    """Issue 12 case 14: the meta batch of step 2 is the panel's line; step 1 stands and reset works."""
    path = BAD / "meta_batches.py"
    app = make_app(path)
    async with opened(app) as pilot:
        await press(pilot, "space", "space")
        assert "step 2: data yielded a batch on the meta device" in panel_text(app)
        assert app.port.session.step_count == 1 and app.is_running
        assert app.state.loss == pytest.approx(PlainLoop(path).step()["loss"], rel=1e-6)
        await press(pilot, "r", "space")
        assert app.port.session.step_count == 1 and panel_text(app) == ""
