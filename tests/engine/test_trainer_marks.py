"""The trainer's step marks in a run: they wait for a step's output (issue 13)."""

from __future__ import annotations

import os

from gdtui import protocol as p
from gdtui.client import TrainerClient
from tests.paths import ROOT
from tests.plain_loop import PlainLoop, read_trace

SCENARIO = "tests/trainer_scenarios/prints_some_steps.py"


def test_a_run_marks_each_printed_line_with_its_step(tmp_path):
    """Issue 13: in a run, a step's mark is written only before its first printed line (or every
    few ms): each line printed at every 50th step of 400 still arrives marked with its step, a
    line written straight to fd 1 arrives marked with no later step than its own, and the run
    ends at the plain loop's loss. The export log, which kept the run's steps in memory, then
    exports every step left after a rewind, with the plain loop's losses."""
    client = TrainerClient.start(SCENARIO, socket_path=str(tmp_path / "t.sock"), cwd=str(ROOT),
                                 env={**os.environ, "PYTHONPATH": str(ROOT)}, name="test")
    try:
        assert isinstance(client.wait_for((p.Opened, p.LoadFailed), 60), p.Opened)
        seen: list = []
        client.send(p.Run(limit=400))
        stopped = client.wait_for(p.Stopped, 120, seen)
        client.wait_for(p.Done, 60, seen)
        lines = [line for e in seen if isinstance(e, p.Output) for line in e.lines]
        printed = [(step, text) for step, text in lines if text.startswith("printed")]
        assert printed == [(k, f"printed at step {k}") for k in range(50, 401, 50)]
        direct = [(step, text) for step, text in lines if text.startswith("fd1")]
        assert [text for _, text in direct] == [f"fd1 at step {k}" for k in range(100, 401, 100)]
        assert all(step <= int(text.rsplit(" ", 1)[1]) for step, text in direct)
        plain = PlainLoop(ROOT / SCENARIO)
        losses = [plain.step()["loss"] for _ in range(400)]
        assert stopped.reason == "limit" and stopped.record.step == 400
        assert stopped.record.loss == losses[-1]
        client.send(p.Rewind(100))
        assert client.wait_for(p.Frame, 60).state.step == 300
        client.send(p.Export(str(tmp_path / "out.jsonl")))
        report = client.wait_for(p.Report, 60)
        assert report.ok and report.lines == (f"wrote 300 steps to {tmp_path / 'out.jsonl'}",)
        exported = [e for e in read_trace(tmp_path / "out.jsonl") if e["event"] == "step"]
        assert [e["loss"] for e in exported] == losses[:300]
    finally:
        assert client.quit().status == 0
