"""The command line: each bad value is one line naming its flag, and the flags do only what they say."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest

from gdtui.cli import build_parser, main
from tests.paths import BAD, ROOT, SCENARIOS
from tests.plain_loop import PlainLoop, read_trace

NOT_GATE = str(SCENARIOS / "not_gate.py")


@pytest.fixture(autouse=True)
def no_screen(monkeypatch):
    """These command lines must never get as far as opening the step-debugger."""

    def opened(*args, **kwargs):
        raise AssertionError("the step-debugger was opened")

    monkeypatch.setattr("gdtui.app.make_app", opened)


def refused(argv: list[str], capsys) -> str:
    """The one line on stderr when ``argv`` is refused with exit status 2 before any step."""
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    out, err = capsys.readouterr()
    assert out == "" and "Traceback" not in err
    assert err.count("\n") == 1, err
    return err


# flag, value, words the line must hold (what is allowed, in plain words)
BAD_VALUES = [
    ("--lr", "inf", "finite"),
    ("--lr", "1e400", "too large"),
    ("--lr", "nan", "not a number"),
    ("--lr", "0", "positive"),
    ("--history-mb", "nan", "not a number"),
    ("--history-mb", "inf", "finite"),
    ("--history-mb", "-5", "0 turns rewind off"),
    ("--seed", "18446744073709551616", "0 to 18446744073709551615"),
    ("--seed", "-1", "0 to 18446744073709551615"),
    ("--seed", "1.5", "whole number"),
    ("--steps", "1e9", "whole number"),
    ("--steps", "-3", "0 or more"),
    ("--trace-max-elements", "ten", "whole number"),
    ("--stop-on-rise", "0", "1 or more"),
]


@pytest.mark.parametrize(("flag", "value", "words"), BAD_VALUES, ids=[f"{f}={v}" for f, v, _ in BAD_VALUES])
@pytest.mark.parametrize("headless", [True, False], ids=["headless", "app"])
def test_a_bad_flag_value_is_one_line_naming_the_flag(flag, value, words, headless, capsys):
    """Issue 12 cases 15 and 24: --lr inf, --history-mb nan/inf/-5, a 2**64 seed and --steps 1e9 each
    give one argparse-style line that names the flag and says what is allowed, never a traceback
    nor a line blaming the scenario file, in the headless run and before the step-debugger opens."""
    err = refused([NOT_GATE, flag, value] + (["--headless"] if headless else []), capsys)
    assert err.startswith(f"gdtui: error: argument {flag}: "), err
    assert words in err, err
    assert "not_gate.py" not in err  # the file is not to blame
    assert "_positive" not in err and "invalid" not in err  # no internal names


def test_steps_0_stays_valid_and_runs_no_step(capsys):
    """Issue 12 case 15: --steps 0 stays valid (--gradcheck's default): no step line, the start values."""
    assert main([NOT_GATE, "--headless", "--steps", "0", "--quiet"]) == 0
    assert capsys.readouterr().out == "0 steps\n"


def test_the_largest_seed_and_a_big_history_are_accepted(capsys):
    """Issue 12 case 15: the bounds themselves are valid: seed 2**64 - 1 and a history of 1e6 MB;
    not_gate has no randomness, so its numbers are the plain loop's."""
    assert main([NOT_GATE, "--headless", "--steps", "1", "--seed", str(2**64 - 1), "--history-mb", "1e6"]) == 0
    loss = PlainLoop(SCENARIOS / "not_gate.py").step()["loss"]
    assert capsys.readouterr().out.startswith(f"step    1  loss {loss:.7g}")


@pytest.mark.parametrize("headless", [True, False], ids=["headless", "app"])
def test_a_device_index_the_cpu_does_not_have_names_the_flag(headless, capsys):
    """Issue 12 case 24: --device cpu:1 was blamed on the scenario's line 33 ("trained tensor `w` is on
    cpu but --device is cpu:1"); it is the command line's error, one line before anything loads."""
    argv = [NOT_GATE, "--device", "cpu:1"] + (["--headless"] if headless else [])
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("--device cpu:1: "), err
    assert "not_gate.py" not in err and "cpu" in err.split(";")[1]


def test_cpu_0_is_the_cpu(capsys):
    """Issue 12 case 24: --device cpu:0 names the one CPU: it runs, with the plain loop's numbers."""
    assert main([NOT_GATE, "--headless", "--steps", "1", "--device", "cpu:0"]) == 0
    loss = PlainLoop(SCENARIOS / "not_gate.py").step()["loss"]
    assert capsys.readouterr().out.startswith(f"step    1  loss {loss:.7g}")


def test_grad_source_grad_fn_without_a_grad_fn_names_the_flag(capsys):
    """Issue 12 case 24: --grad-source grad_fn on a scenario that defines no grad_fn names the flag,
    and says how to fix either side."""
    assert main([NOT_GATE, "--headless", "--grad-source", "grad_fn"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--grad-source grad_fn" in err and "Traceback" not in err


def _step_values(line: str) -> dict[str, float]:
    return {name: float(value) for name, value in re.findall(r"  (\w) \[\[(-?[\d.e+-]+)\]\]", line)}


def test_trace_max_elements_0_summarises_the_trace_but_not_the_step_lines(tmp_path, capsys):
    """Issue 12 case 25: --trace-max-elements 0 stripped the values from the headless step lines too.
    The lines keep w and b (the plain loop's, to 6 digits); the trace holds their summaries, whose
    mean is the plain loop's value exactly."""
    trace = tmp_path / "t.jsonl"
    assert main([NOT_GATE, "--headless", "--steps", "3", "--trace-max-elements", "0", "--trace", str(trace)]) == 0
    lines = capsys.readouterr().out.splitlines()
    plain = PlainLoop(SCENARIOS / "not_gate.py")
    expected = [plain.step() for _ in range(3)]
    for line, step in zip(lines, expected, strict=True):
        values = _step_values(line)
        assert values == pytest.approx({"w": step["params"][0][0][0], "b": step["params"][1][0][0]}, rel=1e-5)
    steps = [x for x in read_trace(trace) if x["event"] == "step"]
    for traced, step in zip(steps, expected, strict=True):
        w = traced["params"]["w"]
        assert w["shape"] == [1, 1] and w["mean"] == step["params"][0][0][0] and w["norm"] == abs(w["mean"])
        assert traced["grads"]["b"]["mean"] == step["grads"][1][0][0]


def test_the_readme_synopsis_lists_every_flag():
    """Issue 12 acceptance: the synopsis under "Command line" lists every flag (eight were missing)."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Command line"):]
    synopsis = section[section.index("```\n") + 4: section.index("```", section.index("```\n") + 4)]
    for action in build_parser()._actions:
        for flag in action.option_strings:
            if flag.startswith("--") and flag != "--help":
                assert flag in synopsis, f"{flag} is not in the synopsis"


def test_help_mentions_gdtui_bench(capsys):
    """Issue 12 acceptance: `gdtui --help` mentions `gdtui bench`."""
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "gdtui bench scenarios/mlp_bench.py" in capsys.readouterr().out


def test_help_lists_each_command_from_its_subparser(capsys):
    """Issue 13: `gdtui --help` has a commands section with bench, examples and example, each with the
    help its argparse subparser gives, and `gdtui bench --help` is the bench's own usage."""
    with pytest.raises(SystemExit):
        main(["--help"])
    commands = capsys.readouterr().out.split("commands:")[1]
    for name, words in [("bench", "time a scenario"), ("examples", "list the example scenarios"),
                        ("example", "open an example scenario by its name")]:
        assert re.search(rf"^\s+{name}\b", commands, re.M), name
        assert words in " ".join(commands.split())
    with pytest.raises(SystemExit) as ended:
        main(["bench", "--help"])
    assert ended.value.code == 0
    assert capsys.readouterr().out.startswith("usage: gdtui bench [-h] [--steps N]")


def test_examples_lists_the_scenarios_without_importing_torch():
    """Issue 13: `gdtui examples` lists every file in scenarios/ with its docstring's first line, in a
    process that never imports torch."""
    code = ("import sys; from gdtui.cli import main; status = main(['examples']); "
            "assert 'torch' not in sys.modules, 'torch was imported'; sys.exit(status)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60)
    assert done.returncode == 0, done.stderr
    rows = {line.split()[0]: line for line in done.stdout.splitlines() if line and not line.startswith("open one")}
    assert set(rows) == {p.stem for p in SCENARIOS.glob("*.py")}
    assert "NOT gate: one sigmoid neuron learns to flip 0 and 1" in rows["not_gate"]


def test_example_by_name_runs_the_scenario_as_a_plain_loop_does(capsys):
    """Issue 13: `gdtui example not_gate --headless --steps 3` runs scenarios/not_gate.py with the options
    given: its losses are a plain PyTorch loop's."""
    assert main(["example", "not_gate", "--headless", "--steps", "3", "--quiet"]) == 0
    out = capsys.readouterr().out
    plain = PlainLoop(SCENARIOS / "not_gate.py")
    losses = [plain.step()["loss"] for _ in range(3)]
    assert f"step    3  loss {losses[-1]:.7g}" in out, out


@pytest.mark.parametrize("argv, words", [
    (["example", "nt_gate"], "no example has that name; did you mean not_gate"),
    (["example", "--headless", "not_gate"], "the example's name comes first"),
])
def test_a_wrong_example_name_is_one_line(argv, words, capsys):
    """Issue 13: a misspelt example name, or an option before the name, is one line, exit status 2."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1, err


def gdtui_process(*args: str) -> subprocess.Popen:
    """``python -m gdtui ARGS`` from this checkout, its output read through pipes."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "gdtui", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=ROOT, env=env)


def test_a_closed_pipe_ends_the_run_quietly_with_the_trace_ended(tmp_path):
    """Issue 12 case 17: `gdtui ... --headless | head -2` printed a BrokenPipeError traceback. It ends
    as a Unix tool that SIGPIPE ends (status 141, nothing on stderr); the trace keeps its end line,
    counting the steps traced, and the two lines read are the plain loop's."""
    trace = tmp_path / "t.jsonl"
    proc = gdtui_process(NOT_GATE, "--headless", "--steps", "1000000", "--trace", str(trace))
    head = [proc.stdout.readline().decode() for _ in range(2)]
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141
    assert err == ""
    plain = PlainLoop(SCENARIOS / "not_gate.py")
    for n, line in enumerate(head, 1):
        assert line.startswith(f"step    {n}  loss {plain.step()['loss']:.7g}  ")
    lines = read_trace(trace)
    steps = [x for x in lines if x["event"] == "step"]
    assert lines[-1] == {"event": "end", "steps": len(steps), "reason": "interrupted"} and len(steps) >= 2


def _wait_for(predicate, what: str) -> None:
    deadline = time.monotonic() + 120
    while not predicate():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_during_the_load_still_ends_the_trace(signum, tmp_path):
    """Issue 12 case 23: Ctrl-C while the scenario loads left an empty --trace (exit 130), and SIGTERM
    no end line at all. Both write the end line (0 steps, interrupted), one line on stderr, and exit
    128 + the signal."""
    trace = tmp_path / "t.jsonl"
    proc = gdtui_process(str(BAD / "sleeps_while_loading.py"), "--headless", "--trace", str(trace))
    assert proc.stdout.readline() == b"loading\n"  # the scenario is in its load now
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum
    assert read_trace(trace) == [{"event": "end", "steps": 0, "reason": "interrupted"}]
    assert err.decode().count("\n") == 1 and "while loading the scenario" in err.decode()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_sigterm_and_sighup_during_the_steps_end_the_trace(signum, tmp_path):
    """Issue 12 case 23: SIGTERM and SIGHUP (a closed SSH session) wrote no end line; they stop the
    run as Ctrl-C does: every traced step counted in the end line, the plain loop's numbers."""
    trace = tmp_path / "t.jsonl"
    proc = gdtui_process(NOT_GATE, "--headless", "--steps", "10000000", "--quiet", "--trace", str(trace))
    # The start line, then at least five steps.
    _wait_for(lambda: trace.exists() and trace.read_text().count("\n") >= 6, "6 trace lines")
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum
    lines = read_trace(trace)
    steps = [x for x in lines if x["event"] == "step"]
    assert lines[-1] == {"event": "end", "steps": len(steps), "reason": "interrupted"}
    name = signal.Signals(signum).name
    assert err.decode() == f"stopped by {name} after {len(steps)} steps\n"
    plain = PlainLoop(SCENARIOS / "not_gate.py")
    assert len(steps) >= 5
    assert [s["loss"] for s in steps[:5]] == [plain.step()["loss"] for _ in range(5)]


