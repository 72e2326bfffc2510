"""`gdtui bench`: it runs the four ways and reports them; errors are one line. No timing is asserted (timings flake)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from gdtui.cli import main
from tests.paths import BAD, ROOT, SCENARIOS

FAST = ["--steps", "3", "--repeats", "1"]


def bench_json(capsys, scenario, *extra: str) -> dict:
    assert main(["bench", str(scenario), *FAST, "--json", *extra]) == 0
    return json.loads(capsys.readouterr().out)


def test_json_has_every_way_with_positive_rates(capsys):
    result = bench_json(capsys, SCENARIOS / "not_gate.py")
    assert result["device"] == "cpu" and result["steps"] == 3 and result["repeats"] == 1
    assert set(result["ways"]) == {"plain", "headless", "run", "trainer"}
    for name, way in result["ways"].items():
        assert way["steps_per_s"] > 0
        assert len(way["rounds_steps_per_s"]) == 1
        if name == "trainer":
            assert way["peak_mb"] is None  # its own process: not this one's memory
        else:
            assert way["peak_mb"] >= 0
        assert way["syncs_per_step"] is None  # counted on CUDA only
    assert result["ways"]["plain"]["vs_plain"] == 1
    for ratio in ("headless/plain", "run/plain", "trainer/plain", "trainer/headless"):
        assert result["ratios"][ratio] > 0, ratio
    trainer, headless = result["ways"]["trainer"], result["ways"]["headless"]
    ratio = trainer["rounds_steps_per_s"][0] / headless["rounds_steps_per_s"][0]
    assert result["ratios"]["trainer/headless"] == pytest.approx(ratio)
    assert result["memory"] == "rss_peak_growth"


@pytest.mark.parametrize("name", ["crop_yields.py", "quadratic.py", "mlp_bench.py"])
def test_dataloader_objective_and_bench_scenarios_run(name, capsys):
    result = bench_json(capsys, SCENARIOS / name)
    assert all(w["steps_per_s"] > 0 for w in result["ways"].values())


def test_table_names_the_four_ways(capsys):
    """Issue 13: the table has run mode through a trainer process, (d), and its ratio to headless."""
    assert main(["bench", str(SCENARIOS / "not_gate.py"), *FAST]) == 0
    out = capsys.readouterr().out
    for label in ("(a) plain PyTorch loop", "(b) gdtui --headless", "(c) run mode (TUI worker)",
                  "(d) run mode, trainer", "(d) vs (b)", "n/a on cpu"):
        assert label in out


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ([str(BAD / "nonscalar_loss.py")], f"{BAD / 'nonscalar_loss.py'}:6: loss_fn returned a tensor of shape (4, 1)"),
        ([str(BAD / "raises_at_step_3.py"), "--steps", "5"], f"{BAD / 'raises_at_step_3.py'}:9: the plain loop raised RuntimeError"),
        (["no/such/scenario.py"], "no/such/scenario.py: no such scenario file"),
    ],
    ids=["bad scenario", "raises mid-run", "missing file"],
)
def test_errors_are_one_line_and_exit_2(args, words, capsys):
    assert main(["bench", *args, "--repeats", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(words), err


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_unavailable_device_is_one_line_and_exit_2(capsys):
    assert main(["bench", str(SCENARIOS / "not_gate.py"), "--device", "cuda", *FAST]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "CUDA is not available" in err, err


def test_bench_imports_no_ui_library():
    code = (
        "import sys\n"
        "from gdtui.cli import main\n"
        "status = main(['bench', 'scenarios/not_gate.py', '--steps', '2', '--repeats', '1', '--json'])\n"
        "print(','.join(m for m in ('textual', 'textual_plotext', 'plotext', 'rich') if m in sys.modules))\n"
        "sys.exit(status)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1] == "", out.stdout
