"""Where a trace or an export is written: never over the scenario or a device, atomically, with
the user's file mode, and a trace that a full disk stops ends on a whole line.

Numbers are checked against tests/plain_loop.py's PlainLoop; file modes against the umask set in the test.
"""

from __future__ import annotations

import csv
import json
import math
import os
import resource
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from gdtui.cli import main
from gdtui.engine import Session, TraceWriter
from gdtui.engine.export import ExportError, export_trace
from gdtui.engine.targets import TargetError, export_target
from tests.paths import ROOT, SCENARIOS
from tests.plain_loop import PlainLoop, read_trace

NOT_GATE = SCENARIOS / "not_gate.py"


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    yield
    os.umask(old)


@pytest.fixture
def no_screen(monkeypatch):
    def opened(*args, **kwargs):
        raise AssertionError("the step-debugger was opened")

    monkeypatch.setattr("gdtui.app.make_app", opened)


def _log(tmp_path: Path, steps: int = 3) -> Path:
    """A trace of ``steps`` steps of not_gate, as the step-debugger writes it."""
    path = tmp_path / "live.jsonl"
    session = Session(NOT_GATE)
    with TraceWriter(path) as trace:
        state = session.state()
        trace.start(scenario=str(NOT_GATE), seed=0, device="cpu", mode=session.mode, params=dict(state.params))
        for _ in range(steps):
            trace.step(session.step())
    return path


def _one_line(err: str, start: str) -> None:
    assert err.count("\n") == 1 and err.startswith(start) and "Traceback" not in err, err


# --- case 1: --trace over the scenario -------------------------------------------------------------

@pytest.mark.parametrize("how", ["same path", "another spelling", "hard link"])
@pytest.mark.parametrize("headless", [True, False], ids=["headless", "app"])
def test_trace_onto_the_scenario_is_refused_and_the_scenario_kept(how, headless, scenario, tmp_path, capsys,
                                                                 no_screen):
    """Issue 12 case 1: `gdtui S.py --headless --trace S.py` (and the app) emptied the scenario before
    loading it. The same file by any name (a hard link: same inode) is refused with one line naming
    --trace, exit 2, before the screen opens; the scenario is byte for byte what it was."""
    before = scenario.read_bytes()
    target = {"same path": str(scenario), "another spelling": f"{tmp_path}/./../{tmp_path.name}/s.py",
              "hard link": str(tmp_path / "link.py")}[how]
    if how == "hard link":
        os.link(scenario, target)
    assert main([str(scenario), "--trace", target] + (["--headless"] if headless else [])) == 2
    _one_line(capsys.readouterr().err, f"--trace {target}: that is the scenario file")
    assert scenario.read_bytes() == before


# --- case 2: export over an existing file, and over the open scenario ----------------------------

def test_an_export_keeps_a_replaced_files_mode_and_gives_a_new_one_the_umask(tmp_path, umask_027):
    """Issue 12 case 2: every export left the file 0600, so an overwritten 0644 file lost its mode. A
    replaced file keeps its mode (0644 here); a new one gets 0666 less the umask (027: 0640)."""
    live = _log(tmp_path)
    kept = tmp_path / "kept.csv"
    kept.write_text("old\n")
    kept.chmod(0o644)
    assert export_trace(live, kept) == 3
    assert stat.S_IMODE(kept.stat().st_mode) == 0o644 and kept.read_text().startswith("step,")
    new = tmp_path / "new.jsonl"
    assert export_trace(live, new) == 3
    assert stat.S_IMODE(new.stat().st_mode) == 0o640
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


# --- case 3: devices, FIFOs and symlinks ---------------------------------------------------------

def test_an_export_refuses_a_fifo_and_a_device_and_leaves_them_be(tmp_path):
    """Issue 12 case 3: an export to a FIFO (or a device: as root, /dev/null) replaced it with a
    regular file. Both are refused with one line; the FIFO is still a FIFO. (/dev/null is only
    checked, never written, so a failing run cannot replace it.)"""
    live = _log(tmp_path)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(ExportError, match="is a FIFO, not a regular file"):
        export_trace(live, fifo)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    with pytest.raises(TargetError, match="/dev/null is a character device"):
        export_target("/dev/null")


def test_an_export_through_a_symlink_replaces_its_target_and_keeps_the_link(tmp_path):
    """Issue 12 case 3: an export to a symlink replaced the link with a regular file. It writes the
    link's target, atomically in the target's folder; the link stays a link, the target keeps its mode."""
    live = _log(tmp_path)
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "steps.jsonl"
    target.write_text("old\n")
    target.chmod(0o604)
    link = tmp_path / "link.jsonl"
    link.symlink_to(target)
    assert export_trace(live, link) == 3
    assert link.is_symlink() and os.readlink(link) == str(target)
    plain = PlainLoop(NOT_GATE)
    assert [e["loss"] for e in read_trace(target) if e["event"] == "step"] == [plain.step()["loss"] for _ in range(3)]
    assert stat.S_IMODE(target.stat().st_mode) == 0o604


def test_the_name_typed_not_the_symlinks_target_says_the_format(tmp_path):
    """Issue 12 case 3: the prompt says "a .csv path writes CSV". Through a link out.csv -> real.txt
    the export wrote JSON Lines into real.txt; it writes CSV, with the plain loop's losses."""
    live = _log(tmp_path)
    target = tmp_path / "real.txt"
    target.write_text("old\n")
    link = tmp_path / "out.csv"
    link.symlink_to(target)
    assert export_trace(live, link) == 3
    rows = list(csv.DictReader(target.read_text().splitlines()))
    plain = PlainLoop(NOT_GATE)
    assert [float(r["loss"]) for r in rows] == [plain.step()["loss"] for _ in range(3)]


# --- case 16: a trace that cannot be written -----------------------------------------------------

def _gdtui(*args: str, limit: int | None = None) -> subprocess.CompletedProcess:
    def fsize():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return subprocess.run([sys.executable, "-m", "gdtui", *args], capture_output=True, text=True, timeout=120,
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          preexec_fn=fsize if limit else None, check=False)


def test_a_trace_past_ulimit_f_ends_on_a_whole_line(tmp_path):
    """Issue 12 case 16: past `ulimit -f` the trace gave chained tracebacks and a torn last line. One
    line naming --trace, exit 2; every line of the trace is whole JSON, its steps the plain loop's."""
    trace = tmp_path / "t.jsonl"
    done = _gdtui(str(NOT_GATE), "--headless", "--steps", "50", "--quiet", "--trace", str(trace), limit=2000)
    assert done.returncode == 2
    _one_line(done.stderr, f"--trace {trace}: cannot write it (File too large)")
    text = trace.read_text()
    assert text.endswith("\n") and len(text) <= 2000
    steps = [e for e in read_trace(trace) if e["event"] == "step"]
    assert steps and f"after step {len(steps)}" in done.stderr
    plain = PlainLoop(NOT_GATE)
    assert [s["loss"] for s in steps] == [plain.step()["loss"] for _ in steps]


def test_a_trace_to_a_full_device_or_a_fifo_with_no_reader_is_one_line(tmp_path):
    """Issue 12 case 16: --trace /dev/full gave chained tracebacks, and a FIFO with no reader blocked
    for ever. Each is one line naming --trace, exit 2, at once."""
    full = _gdtui(str(NOT_GATE), "--headless", "--steps", "3", "--trace", "/dev/full")
    assert full.returncode == 2
    _one_line(full.stderr, "--trace /dev/full: cannot write it (No space left on device)")
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    alone = _gdtui(str(NOT_GATE), "--headless", "--steps", "3", "--trace", str(fifo))
    assert alone.returncode == 2
    _one_line(alone.stderr, f"--trace {fifo}: it is a FIFO that nothing reads")


# --- case 27: a .csv trace -----------------------------------------------------------------------

def test_a_csv_trace_is_csv_with_the_plain_loops_numbers(tmp_path, capsys):
    """Issue 12 case 27: `--trace x.csv` wrote JSON Lines. It writes the export's CSV: a row per step,
    the plain loop's loss exactly and its parameter and gradient norms."""
    trace = tmp_path / "x.csv"
    assert main([str(NOT_GATE), "--headless", "--steps", "3", "--quiet", "--trace", str(trace)]) == 0
    rows = list(csv.DictReader(trace.open()))
    plain = PlainLoop(NOT_GATE)
    assert [r["step"] for r in rows] == ["1", "2", "3"]
    for row in rows:
        step = plain.step()
        assert float(row["loss"]) == step["loss"]
        for name, value, grad in zip(["w", "b"], step["params"], step["grads"], strict=True):
            assert float(row[f"param_norm[{name}]"]) == pytest.approx(abs(value[0][0]), rel=1e-12)
            assert float(row[f"grad_norm[{name}]"]) == pytest.approx(abs(grad[0][0]), rel=1e-12)
    with pytest.raises(json.JSONDecodeError):
        json.loads(trace.read_text().splitlines()[0])
    assert not math.isnan(float(rows[-1]["loss"]))
