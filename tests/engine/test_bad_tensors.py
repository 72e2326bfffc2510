"""Tensors gdtui cannot step: sparse gradients, complex numbers, the meta device (issue 12 cases 7, 13 and 14).

Each is one line naming the file, the line and the fix, exit status 2, before any
step where the load can tell; in the step-debugger the line shows in the panel
and the app stays open. References: a plain loop over the scenario's own objects.
"""

from __future__ import annotations

import warnings

import pytest

from gdtui.cli import main
from gdtui.engine import ScenarioError, Session
from tests.bad_cases import BAD_TENSORS_AT_LOAD as AT_LOAD
from tests.paths import BAD
from tests.plain_loop import PlainLoop, read_trace


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


