"""Bad scenarios get one clear line (file:line: what; fix), the right exit status, and a valid trace."""

from __future__ import annotations

import pytest

from gdtui.cli import main
from gdtui.engine import ScenarioError, Session, StepError
from tests.bad_cases import CASES
from tests.paths import BAD, SCENARIOS
from tests.plain_loop import read_trace


@pytest.mark.parametrize(("name", "status", "line", "words"), CASES, ids=[c[0] for c in CASES])
def test_one_line_error_status_and_valid_trace(name, status, line, words, tmp_path, capsys):
    path = BAD / name
    trace = tmp_path / "trace.jsonl"
    assert main([str(path), "--headless", "--steps", "5", "--trace", str(trace), "--quiet"]) == status
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err  # exactly one line, no traceback
    assert "Traceback" not in err
    location = f"{path}:{line}:" if line else f"{path}:"
    assert err.startswith(location), err
    assert words in err
    lines = read_trace(trace)  # strict JSON on every line
    assert lines[-1]["event"] == "end"
    assert lines[-1]["reason"] == ("nonfinite" if status == 3 else "error")
    steps = [x for x in lines if x["event"] == "step"]
    assert [s["step"] for s in steps] == list(range(1, len(steps) + 1))
    assert lines[-1]["steps"] == len(steps)


def test_exception_mid_step_keeps_the_session_usable():
    session = Session(BAD / "raises_at_step_3.py")
    session.step()
    session.step()
    with pytest.raises(StepError, match="step 3"):
        session.step()
    # back at the start of step 3, ready to rewind or reset
    assert session.step_count == 2 and session.next_phase == "forward"
    assert session.rewind(1) == 1
    session.reset()
    assert session.step_count == 0
    assert session.step().step == 1


def test_nan_names_the_first_nonfinite_tensor():
    session = Session(BAD / "nan_at_step_2.py")
    assert session.step().nonfinite is None
    record = session.step()
    assert record.nonfinite == "loss"
    assert record.params["w"].nan == 1


def test_unavailable_device_is_one_line(capsys):
    path = BAD / "missing_loss_fn.py"
    assert main([str(path), "--headless", "--device", "cuda:7"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--device cuda:7" in err and "Traceback" not in err


def test_not_a_device_is_one_line(capsys):
    assert main([str(BAD / "missing_loss_fn.py"), "--headless", "--device", "toaster"]) == 2
    assert "is not a device" in capsys.readouterr().err


def test_missing_file(capsys):
    assert main(["no/such/scenario.py", "--headless"]) == 2
    assert capsys.readouterr().err == "no/such/scenario.py: no such scenario file; check the path\n"


def test_load_error_is_a_scenario_error_with_file_and_line():
    with pytest.raises(ScenarioError) as info:
        Session(BAD / "nonscalar_loss.py")
    assert info.value.line == 6 and info.value.path.endswith("nonscalar_loss.py")


def test_ctrl_c_writes_the_end_line_and_exits_130(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    trace = tmp_path / "t.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "gdtui", str(SCENARIOS / "not_gate.py"), "--headless", "--steps", "10000000",
         "--quiet", "--trace", str(trace)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not trace.exists() or trace.read_text().count("\n") < 5):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    lines = read_trace(trace)  # every line complete and strict JSON
    assert lines[-1]["event"] == "end" and lines[-1]["reason"] == "interrupted"
    assert lines[-1]["steps"] == len([x for x in lines if x["event"] == "step"]) >= 4
    assert "Traceback" not in err and err.startswith("interrupted after")


def test_a_1e8_element_tensor_steps_with_rewind_off_and_a_small_trace(tmp_path):
    trace = tmp_path / "trace.jsonl"
    assert main([str(BAD / "huge_tensor.py"), "--headless", "--steps", "3", "--trace", str(trace), "--quiet"]) == 0
    assert trace.stat().st_size < 100_000  # summaries, never the 1e8 values
    lines = read_trace(trace)
    losses = [x["loss"] for x in lines if x["event"] == "step"]
    assert losses == pytest.approx([1.0, 0.25, 0.0625], rel=1e-5)  # the distance to 1 halves each step
    assert lines[-1]["event"] == "end" and lines[-1]["reason"] == "steps"


def test_ctrl_c_while_a_step_line_is_written_still_counts_it(tmp_path, monkeypatch, capsys):
    """SIGINT arrives as the 5th step line is flushed (Python raises it when the flush returns):
    the end line counts the 5 lines the trace holds, as does stderr."""
    import os
    import signal

    from gdtui.engine.trace import TraceWriter

    # The lines reach the file in _write_waiting (flush, and each line of a trace flushed at once).
    write_step, flush = TraceWriter.step, TraceWriter._write_waiting
    written, fired = 0, False

    def step(self, record):
        nonlocal written
        written += 1
        write_step(self, record)

    def flush_then_interrupt(self):
        nonlocal fired
        flush(self)
        if written == 5 and not fired:
            fired = True
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(TraceWriter, "_write_waiting", flush_then_interrupt)
    monkeypatch.setattr(TraceWriter, "step", step)
    trace = tmp_path / "t.jsonl"
    path = SCENARIOS / "not_gate.py"
    assert main([str(path), "--headless", "--steps", "1000", "--quiet", "--trace", str(trace)]) == 130
    lines = read_trace(trace)
    assert sum(line["event"] == "step" for line in lines) == 5
    assert lines[-1] == {"event": "end", "steps": 5, "reason": "interrupted"}
    assert capsys.readouterr().err == "interrupted after 5 steps\n"
