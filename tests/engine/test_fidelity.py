"""gdtui's numbers equal a plain PyTorch loop's, exactly (== on floats), in both modes.

Reference: PlainLoop in tests/plain_loop.py, the notebooks' loop written out over the
scenario's own objects with no gdtui code involved.
"""

from __future__ import annotations

import pytest

from gdtui.cli import main
from gdtui.engine import Session
from tests.paths import seed_scenarios
from tests.plain_loop import PlainLoop, read_trace

SCENARIOS = seed_scenarios()


def steps_for(path) -> int:
    """50 steps, or 3 epochs for the DataLoader scenario (crop yields: 15 rows, batch 5)."""
    return 9 if path.stem == "crop_yields" else 50


def plain_steps(path, n, mode, grad_fn=False):
    loop = PlainLoop(path)
    return [loop.step(mode, grad_fn) for _ in range(n)]


def as_plain(record: dict) -> dict:
    """A trace step line in PlainLoop's shape."""
    return {
        "loss": record["loss"],
        "params": list(record["params"].values()),
        "grads": list(record["grads"].values()),
        "metrics": record["metrics"],
    }


def test_every_seed_scenario_is_covered():
    names = {p.stem for p in SCENARIOS}
    assert {"linear_regression", "polynomial_regression", "logistic_regression", "fit_2x",
            "crop_yields", "quadratic", "not_gate", "dead_relu"} <= names


@pytest.mark.parametrize("mode", ["optim", "manual"])
@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_headless_trace_equals_plain_loop(path, mode, tmp_path):
    n = steps_for(path)
    trace = tmp_path / "trace.jsonl"
    status = main([str(path), "--headless", "--steps", str(n), "--mode", mode, "--trace", str(trace), "--quiet"])
    lines = read_trace(trace)
    steps = [line for line in lines if line["event"] == "step"]
    expected = plain_steps(path, len(steps), mode)
    assert lines[0]["event"] == "start"
    assert [as_plain(s) for s in steps] == expected
    assert all(s["mode"] == mode for s in steps)
    if status == 0:
        assert len(steps) == n
        assert lines[-1] == {"event": "end", "steps": n, "reason": "steps"}
    else:  # a scenario that diverges on purpose stops at the first NaN/Inf
        assert status == 3 and lines[-1]["reason"] == "nonfinite"


@pytest.mark.parametrize("mode", ["optim", "manual"])
@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_rewind_five_and_restep_is_bit_exact(path, mode):
    n = steps_for(path)
    session = Session(path, mode=mode)
    first = [session.step() for _ in range(n)]
    assert session.rewind(5) == 5
    assert session.step_count == n - 5
    again = [session.step() for _ in range(5)]
    assert again == first[-5:]
    expected = plain_steps(path, n, mode)
    got = [{"loss": r.loss, "params": [v.values for v in r.params.values()],
            "grads": [v.values for v in r.grads.values()], "metrics": dict(r.metrics)} for r in first]
    assert got == expected


def test_mode_switch_between_steps_follows_plain_loop():
    path = next(p for p in SCENARIOS if p.stem == "crop_yields")
    session = Session(path)
    modes = ["optim", "manual", "manual", "optim", "manual", "optim"]
    records = []
    for m in modes:
        session.panel.set_mode(m)
        records.append(session.step())
    loop = PlainLoop(path)
    expected = [loop.step(m) for m in modes]
    assert [[v.values for v in r.params.values()] for r in records] == [e["params"] for e in expected]
    assert [r.mode for r in records] == modes


def test_grad_fn_source_follows_plain_loop(tmp_path):
    path = next(p for p in SCENARIOS if p.stem == "fit_2x")
    trace = tmp_path / "t.jsonl"
    assert main([str(path), "--headless", "--steps", "10", "--grad-source", "grad_fn", "--trace", str(trace), "--quiet"]) == 0
    steps = [line for line in read_trace(trace) if line["event"] == "step"]
    assert all(s["grad_source"] == "grad_fn" for s in steps)
    loop = PlainLoop(path)
    mode = steps[0]["mode"]
    assert [as_plain(s) for s in steps] == [loop.step(mode, grad_fn=True) for _ in range(10)]
