"""What a scenario sees of gdtui: its reserved names, and the command line it is given."""

from __future__ import annotations

import os
import subprocess
import sys

import torch

from gdtui.cli import main
from gdtui.engine import Session
from gdtui.engine.gradcheck import gradient_check
from tests.paths import BAD, ROOT
from tests.plain_loop import read_trace


def test_a_params_list_says_params_is_a_gdtui_name(capsys):
    """Issue 12 case 37: a tutorial's own `params = [w, b]` collides with gdtui's reserved `params`:
    one line, at the line that defines it, saying whose name it is and how to rename it."""
    path = BAD / "params_list.py"
    assert main([str(path), "--headless", "--steps", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(f"{path}:6: "), err  # params = [w, b]
    assert "`params` is a name gdtui reads" in err
    assert "rename the variable" in err


#: A scenario that reads one flag with argparse, and keeps the sys.argv it saw.
ARGPARSE_SCENARIO = '''"""Starts where --start says."""
import argparse
import sys

import torch

seen_argv = list(sys.argv)
parser = argparse.ArgumentParser()
parser.add_argument("--start", type=float, default=0.0)
opts = parser.parse_args()
w = torch.tensor([opts.start], requires_grad=True)
def loss():
    return ((w - 3.0) ** 2).sum()
lr = 0.25
'''

#: Configuration the way nanoGPT's configurator does it: each NAME=VALUE argument overrides a
#: module variable, any other argument is a file executed in the scenario's namespace.
CONFIGURATOR_SCENARIO = '''"""Configured from its command line."""
import ast
import sys

import torch

start = 0.0
for arg in sys.argv[1:]:
    if "=" in arg:
        key, value = arg.removeprefix("--").split("=", 1)
        globals()[key] = ast.literal_eval(value)
    else:
        exec(open(arg).read())
w = torch.tensor([start], requires_grad=True)
def loss():
    return ((w - 3.0) ** 2).sum()
lr = 0.25
'''


def plain_losses(start: float, steps: int) -> list[float]:
    """The plain PyTorch loop of both scenarios above, from w = start."""
    w = torch.tensor([start], requires_grad=True)
    opt = torch.optim.SGD([w], lr=0.25)
    out = []
    for _ in range(steps):
        loss = ((w - 3.0) ** 2).sum()
        loss.backward()
        opt.step()
        opt.zero_grad()
        out.append(loss.item())
    return out


def test_scenario_argparse_reads_the_arguments_after_dashdash(tmp_path, capsys):
    """Issue 12 case 31: `gdtui S.py ... -- --start 1.5` gives the scenario sys.argv == [S.py, --start, 1.5]
    (gdtui's flags never reach it), and the run equals a plain loop from w = 1.5."""
    path = tmp_path / "reads_flag.py"
    path.write_text(ARGPARSE_SCENARIO)
    trace = tmp_path / "t.jsonl"
    argv_before = list(sys.argv)
    assert main([str(path), "--headless", "--steps", "3", "--trace", str(trace), "--", "--start", "1.5"]) == 0
    assert sys.argv == argv_before
    losses = [x["loss"] for x in read_trace(trace) if x["event"] == "step"]
    assert losses == plain_losses(1.5, 3)


def test_scenario_argv_is_kept_across_reset_and_gradient_check(tmp_path):
    """Issue 12 case 31: every load of the scenario (start, reset, the gradient check's copy) runs
    with sys.argv == [path, *args], and gdtui's own sys.argv is back after each."""
    path = tmp_path / "reads_flag.py"
    path.write_text(ARGPARSE_SCENARIO)
    argv_before = list(sys.argv)
    session = Session(path, args=["--start", "1.5"])
    assert session.scenario.namespace["seen_argv"] == [str(path), "--start", "1.5"]
    assert sys.argv == argv_before
    session.step()
    session.reset()
    assert session.scenario.namespace["seen_argv"] == [str(path), "--start", "1.5"]
    assert [session.step().loss for _ in range(2)] == plain_losses(1.5, 2)
    assert gradient_check(session).ok
    assert sys.argv == argv_before


def test_configurator_scenario_sees_only_its_own_arguments(tmp_path):
    """Issue 12 case 31: a nanoGPT-configurator-style scenario (NAME=VALUE overrides, other arguments
    executed as files) run by the real command line: gdtui's flags do not leak into it."""
    path = tmp_path / "configured.py"
    path.write_text(CONFIGURATOR_SCENARIO)
    overrides = tmp_path / "override.py"
    overrides.write_text("start = 0.5\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    plain = subprocess.run([sys.executable, "-m", "gdtui", str(path), "--headless", "--steps", "2", "--quiet"],
                           capture_output=True, text=True, timeout=120, env=env, check=False)
    assert plain.returncode == 0, plain.stderr
    configured = subprocess.run([sys.executable, "-m", "gdtui", str(path), "--headless", "--steps", "2",
                                 "--trace", str(tmp_path / "t.jsonl"), "--", str(overrides), "--start=1.5"],
                                capture_output=True, text=True, timeout=120, env=env, check=False)
    assert configured.returncode == 0, configured.stderr
    losses = [x["loss"] for x in read_trace(tmp_path / "t.jsonl") if x["event"] == "step"]
    assert losses == plain_losses(1.5, 2)  # the file set 0.5, then --start=1.5 overrode it


def test_scenario_argparse_error_is_one_line(tmp_path, capsys):
    """Issue 12 case 31: the scenario's argparse refusing its arguments (it calls sys.exit(2)) is one
    line naming the parse_args line and the arguments, not argparse's usage block."""
    path = tmp_path / "reads_flag.py"
    path.write_text(ARGPARSE_SCENARIO)
    assert main([str(path), "--headless", "--steps", "1", "--", "--start", "x"]) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and "usage:" not in captured.err, captured.err
    assert captured.err.startswith(f"{path}:10: the scenario's argparse refused its command line: "
                                   "argument --start: invalid float value: 'x'; fix the arguments after --")
