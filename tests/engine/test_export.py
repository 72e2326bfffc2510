"""Export: the current timeline of a trace, as JSON Lines or CSV, written atomically."""

from __future__ import annotations

import csv
import math

import pytest

from gdtui.engine import Session, TraceWriter
from gdtui.engine.export import ExportError, export_trace
from tests.paths import SCENARIOS
from tests.plain_loop import PlainLoop, read_trace


def traced_session(tmp_path, path, steps, rewind_to=None, again=0, lazy=False, name="live.jsonl"):
    """Step a session, writing the trace the way the step-debugger does, rewinds included."""
    trace_path = tmp_path / name
    session = Session(path)
    with TraceWriter(trace_path, lazy=lazy) as trace:
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


def test_a_log_past_its_size_keeps_every_step_but_leaves_the_tensors_out(tmp_path):
    """A writer capped at 2 kB (the app's own log: 512 MB): later step lines have no tensors, the
    export still has every step with the plain loop's loss, and norms only where tensors were kept."""
    path = SCENARIOS / "not_gate.py"
    plain = PlainLoop(path)
    outs = [plain.step() for _ in range(30)]
    session = Session(path)
    with TraceWriter(tmp_path / "live.jsonl", tensor_bytes=2000) as trace:
        for _ in range(30):
            trace.step(session.step())
    kept = [e for e in read_trace(tmp_path / "live.jsonl") if "params" in e]
    assert 0 < len(kept) < 30 and trace.tensors_left_out_from == len(kept) + 1
    assert export_trace(tmp_path / "live.jsonl", tmp_path / "out.csv") == 30
    rows = list(csv.DictReader((tmp_path / "out.csv").open()))
    assert [float(r["loss"]) for r in rows] == [o["loss"] for o in outs]
    w_norm = [float(r["param_norm[w]"]) for r in rows]
    assert w_norm[0] == pytest.approx(abs(outs[0]["params"][0][0][0]), rel=1e-6)
    assert all(math.isnan(x) for x in w_norm[len(kept):])


def test_a_lazy_log_is_the_same_file_and_exports_the_plain_loop(tmp_path, monkeypatch):
    """Issue 13: the export log keeps step records in memory and writes them later (at most
    LAZY_RECORDS waiting, any other event, a flush): the file is byte for byte the one written at
    each step, rewinds included, and its export has the plain loop's parameters."""
    path = SCENARIOS / "not_gate.py"
    monkeypatch.setattr(TraceWriter, "LAZY_RECORDS", 4)
    monkeypatch.setattr(TraceWriter, "BUFFER_BYTES", 300)  # a batch of records passes it: the rest follow in order
    eager = traced_session(tmp_path, path, 7, rewind_to=3, again=2, name="eager.jsonl")
    lazy = traced_session(tmp_path, path, 7, rewind_to=3, again=2, lazy=True, name="lazy.jsonl")
    assert lazy.read_bytes() == eager.read_bytes()
    out = tmp_path / "out.jsonl"
    assert export_trace(lazy, out) == 5
    plain = PlainLoop(path)
    steps = [x for x in read_trace(out) if x["event"] == "step"]
    assert [list(s["params"].values()) for s in steps] == [plain.step()["params"] for _ in range(5)]

    session = Session(path)
    trace = TraceWriter(tmp_path / "waiting.jsonl", lazy=True, flush_each=False)
    for _ in range(3):
        trace.step(session.step())
    assert trace.pending == 3 and (tmp_path / "waiting.jsonl").read_bytes() == b""
    trace.write_pending(2)
    assert trace.pending == 1
    trace.flush()
    assert trace.pending == 0
    losses = [x["loss"] for x in read_trace(tmp_path / "waiting.jsonl")]
    again = PlainLoop(path)
    assert losses == [again.step()["loss"] for _ in range(3)]
    trace.close()
