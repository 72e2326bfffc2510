"""The command line: each bad value is one line naming its flag, and the flags do only what they say."""

from __future__ import annotations

import re

import pytest

from conftest import ROOT, SCENARIOS, PlainLoop, read_trace
from gdtui.cli import build_parser, main

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
    assert "gdtui bench SCENARIO" in capsys.readouterr().out
