"""Export: the current timeline of a trace, as JSON Lines or CSV, written atomically."""

from __future__ import annotations

import csv
import math

import pytest

from conftest import SCENARIOS, PlainLoop, read_trace
from gdtui.engine import Session, TraceWriter
from gdtui.engine.export import ExportError, export_trace


def traced_session(tmp_path, path, steps, rewind_to=None, again=0):
    """Step a session, writing the trace the way the step-debugger does, rewinds included."""
    trace_path = tmp_path / "live.jsonl"
    session = Session(path)
    with TraceWriter(trace_path) as trace:
        state = session.state()
        trace.start(scenario=str(path), seed=0, device=state.device, mode=session.mode, params=dict(state.params))
        for _ in range(steps):
            trace.step(session.step())
        if rewind_to is not None:
            session.rewind(session.step_count - rewind_to)
            trace.rewind(rewind_to)
            for _ in range(again):
                trace.step(session.step())
    return trace_path


def test_jsonl_export_is_the_current_timeline(tmp_path):
    path = SCENARIOS / "not_gate.py"
    live = traced_session(tmp_path, path, 6, rewind_to=2, again=3)
    out = tmp_path / "out.jsonl"
    assert export_trace(live, out) == 5
    lines = read_trace(out)
    steps = [x for x in lines if x["event"] == "step"]
    assert [s["step"] for s in steps] == [1, 2, 3, 4, 5]
    plain = PlainLoop(path)
    assert [list(s["params"].values()) for s in steps] == [plain.step()["params"] for _ in range(5)]
    assert lines[0]["event"] == "start" and lines[-1] == {"event": "end", "steps": 5, "reason": "export"}


def test_csv_has_one_row_per_step_with_norms_from_a_plain_loop(tmp_path):
    path = SCENARIOS / "logistic_regression.py"
    live = traced_session(tmp_path, path, 4)
    out = tmp_path / "steps.csv"
    assert export_trace(live, out) == 4
    rows = list(csv.DictReader(out.open()))
    assert [r["step"] for r in rows] == ["1", "2", "3", "4"]
    assert {"epoch", "batch", "mode", "lr", "loss", "accuracy"} <= set(rows[0])
    plain = PlainLoop(path)
    for row in rows:
        expected = plain.step()
        assert float(row["loss"]) == expected["loss"]
        assert float(row["accuracy"]) == expected["metrics"]["accuracy"]
        for name, values, grad in zip(["w", "b"], expected["params"], expected["grads"]):
            flat = [x for r in values for x in (r if isinstance(r, list) else [r])]
            gflat = [x for r in grad for x in (r if isinstance(r, list) else [r])]
            assert float(row[f"param_norm[{name}]"]) == pytest.approx(math.sqrt(sum(x * x for x in flat)), rel=1e-12)
            assert float(row[f"grad_norm[{name}]"]) == pytest.approx(math.sqrt(sum(x * x for x in gflat)), rel=1e-12)


def test_a_failed_write_says_why_and_loses_nothing(tmp_path, monkeypatch):
    live = traced_session(tmp_path, SCENARIOS / "not_gate.py", 3)
    with pytest.raises(ExportError, match="cannot write .*no/such/dir/out.csv"):
        export_trace(live, tmp_path / "no" / "such" / "dir" / "out.csv")
    target = tmp_path / "keep.csv"
    target.write_text("precious\n")

    import gdtui.engine.export as export

    def disk_full(steps):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(export, "csv_rows", disk_full)  # fails mid-write, after the temporary file exists
    with pytest.raises(ExportError, match="No space left on device"):
        export_trace(live, target)
    assert target.read_text() == "precious\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.csv", "live.jsonl"]
