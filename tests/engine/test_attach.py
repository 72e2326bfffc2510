"""Issue 14: gdtui attached to unmodified training scripts, headless.

Each script under tests/attach_scripts/ is run twice in a subprocess: with plain ``python``
(the reference: no gdtui code involved) and with ``gdtui SCRIPT --headless --trace``. The
numbers asserted are the ones the plain run printed (its losses, clip norms, scales and
parameter sums), never values gdtui produced on its own.
"""

from __future__ import annotations

import functools
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.paths import ROOT
from tests.plain_loop import read_trace

SCRIPTS = ROOT / "tests" / "attach_scripts"
TRAINING = ["mnist_cnn", "nanogpt", "lstm_word", "lbfgs_fit", "dcgan", "bert_classifier", "frozen_backbone",
            "hand_update", "scaler_skip"]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONHASHSEED": "0"}


@functools.cache
def plain(name: str) -> subprocess.CompletedProcess:
    """The script run by plain python, as its author runs it."""
    return subprocess.run([sys.executable, str(SCRIPTS / f"{name}.py")], capture_output=True, env=_env(), timeout=120)


def attached(tmp_path: Path, name: str, *flags: str, cwd: Path | None = None) -> tuple[subprocess.CompletedProcess, list[dict]]:
    trace = tmp_path / f"{name}.jsonl"
    target = ["-m", name] if cwd is not None else [str(SCRIPTS / f"{name}.py")]
    run = subprocess.run([sys.executable, "-m", "gdtui", *target, "--headless", "--trace", str(trace), *flags],
                         capture_output=True, env=_env(), timeout=120, cwd=cwd)
    return run, read_trace(trace) if trace.exists() else []


@functools.cache
def _attached_once(name: str, folder: str) -> tuple[subprocess.CompletedProcess, list[dict]]:
    return attached(Path(folder), name)


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    """``attached(name)`` with no flags, run once per script for this module's tests."""
    folder = str(tmp_path_factory.mktemp("attached"))
    return lambda name: _attached_once(name, folder)


def printed_losses(stdout: bytes) -> list[float]:
    """The losses a script printed: the first number of each line before its last (the parameter
    sums), leaving out its evaluation lines."""
    lines = stdout.decode().splitlines()[:-1]
    return [float(line.split()[0]) for line in lines if not line.startswith(("test", "val"))]


def steps(trace: list[dict]) -> list[dict]:
    return [e for e in trace if e["event"] == "step"]


def same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


@pytest.mark.parametrize("name", TRAINING)
def test_attached_output_is_the_plain_runs_and_the_trace_has_its_losses(default_run, name):
    """Issue 14: headless attached, the script's stdout equals plain python's byte for byte, and
    each trace step's loss is the loss the script printed for that step (an accumulated loss is
    the sum of its micro-batches' loss.item(), as nanoGPT's loop adds them)."""
    reference = plain(name)
    assert reference.returncode == 0, reference.stderr.decode()
    run, trace = default_run(name)
    assert run.returncode == 0, run.stderr.decode()
    assert run.stdout == reference.stdout
    losses = [s["loss"] for s in steps(trace)]
    assert losses == printed_losses(reference.stdout)
    assert trace[0]["event"] == "start" and trace[-1] == {"event": "end", "steps": len(losses), "reason": "finished"}
    assert len(run.stderr.decode().splitlines()) == len(losses)  # a step line each, on stderr


def test_attached_lr_follows_the_scripts_scheduler(default_run):
    """Issue 14: MNIST-style StepLR(gamma 0.7) per epoch, 3 batches an epoch: the trace's lr is
    1.0 for the first epoch's steps and 0.7 for the second's, as the plain loop's scheduler sets."""
    _, trace = default_run("mnist_cnn")
    assert [s["lr"] for s in steps(trace)] == [1.0] * 3 + [1.0 * 0.7] * 3
    assert [s["optimizer"] for s in steps(trace)] == [0] * 6
    optimizer = [e for e in trace if e["event"] == "optimizer"]
    assert len(optimizer) == 1 and optimizer[0]["class"] == "Adadelta" and optimizer[0]["param_groups"][0]["rho"] == 0.9
    assert "conv1.weight" in steps(trace)[0]["params"] and "fc2.bias" in steps(trace)[0]["params"]


def test_attached_nanogpt_groups_cosine_lr_and_full_names(default_run):
    """Issue 14: nanoGPT-style: AdamW's decay and no-decay groups are in the optimizer event, the
    lr of each step is the loop's get_lr (warmup 2, cosine to 1e-4 over 6 iterations), and the
    tensors carry their full module names."""
    _, trace = default_run("nanogpt")
    groups = next(e for e in trace if e["event"] == "optimizer")["param_groups"]
    assert [g["weight_decay"] for g in groups] == [0.1, 0.0] and groups[0]["betas"] == [0.9, 0.95]

    def get_lr(it):  # the script's own schedule, written out
        if it < 2:
            return 1e-3 * (it + 1) / 3
        return 1e-4 + 0.5 * (1.0 + math.cos(math.pi * (it - 2) / 4)) * (1e-3 - 1e-4)

    assert [s["lr"] for s in steps(trace)] == [get_lr(i) for i in range(6)]
    names = set(steps(trace)[0]["params"])
    assert {"transformer.h.0.attn.in_proj_weight", "transformer.h.1.mlp.2.weight", "lm_head.weight"} <= names
    assert all(s["clip_norm"]["max_norm"] == 1.0 for s in steps(trace))


def test_attached_clip_norm_is_the_norm_before_clipping(default_run):
    """Issue 14: LSTM word model: each step's clip_norm.before is the total norm clip_grad_norm_
    returned to the script (it prints it), and max_norm is its --clip 0.25."""
    reference = plain("lstm_word")
    norms = [float(line.split()[1]) for line in reference.stdout.decode().splitlines()[:-1] if not line.startswith("val")]
    _, trace = default_run("lstm_word")
    assert [s["clip_norm"] for s in steps(trace)] == [{"before": n, "max_norm": 0.25} for n in norms]


def test_attached_two_optimizers_are_labelled(default_run):
    """Issue 14: DCGAN-style: D then G step in turn; each step names its optimizer and carries
    that optimizer's tensors, named by the model that owns them."""
    _, trace = default_run("dcgan")
    assert [s["optimizer"] for s in steps(trace)] == [0, 1] * 3
    assert all(n.startswith("netD.main.") for n in steps(trace)[0]["params"])
    assert all(n.startswith("netG.main.") for n in steps(trace)[1]["params"])
    assert [e["class"] for e in trace if e["event"] == "optimizer"] == ["Adam", "Adam"]


def test_attached_frozen_backbone_shows_only_the_trained_head(default_run):
    """Issue 14: a frozen backbone: only the head's tensors (the optimizer's) are in the trace,
    with each param group's lr in the optimizer event."""
    _, trace = default_run("frozen_backbone")
    assert set(steps(trace)[0]["params"]) == {"1.weight", "1.bias", "3.weight", "3.bias"}
    groups = next(e for e in trace if e["event"] == "optimizer")["param_groups"]
    assert [g["lr"] for g in groups] == [0.05, 0.1]


def test_attached_hand_update_names_the_scripts_variables(default_run):
    """Issue 14: a seed-notebook loop (w -= lr * w.grad, no optimizer): a step per backward, the
    tensors named w and b, their values after each update equal to the plain loop's."""
    import torch

    torch.manual_seed(2017)
    x = torch.tensor([[3.3], [4.4], [5.5], [6.71], [6.93], [4.168], [9.779], [6.182]])
    y = torch.tensor([[1.7], [2.76], [2.09], [3.19], [1.694], [1.573], [3.366], [2.596]])
    w, b = torch.randn(1, requires_grad=True), torch.zeros(1, requires_grad=True)
    expected = []
    for _ in range(5):  # the plain loop, written out
        loss = torch.mean((x * w + b - y) ** 2)
        loss.backward()
        with torch.no_grad():
            w -= 1e-2 * w.grad
            b -= 1e-2 * b.grad
        expected.append((w.tolist(), b.tolist()))
        w.grad.zero_()
        b.grad.zero_()
    _, trace = default_run("hand_update")
    assert [(s["params"]["w"], s["params"]["b"]) for s in steps(trace)] == expected
    assert all(s["mode"] == "manual" for s in steps(trace))


def test_attached_closure_step_has_the_first_calls_loss(default_run):
    """Issue 14: LBFGS: the step's loss is the closure's first call's, which step() returns to the
    script (it prints it); the tensors are named after the model, whose forward runs in the closure."""
    _, trace = default_run("lbfgs_fit")
    assert set(steps(trace)[0]["params"]) == {"0.weight", "0.bias", "2.weight", "2.bias"}


def test_attached_scaler_skip_is_recorded_with_its_scale(default_run):
    """Issue 14: a GradScaler that skips step 2 for an Inf gradient: the step is marked skipped
    with the scale it had (1024; the script prints 512 after update()), and is not a NaN stop."""
    run, trace = default_run("scaler_skip")
    assert run.returncode == 0
    skipped = [(s["step"], s.get("skipped"), s.get("scale")) for s in steps(trace)]
    assert skipped == [(1, None, None), (2, True, 1024.0), (3, None, None), (4, None, None)]
    assert steps(trace)[1]["params"] == steps(trace)[0]["params"]  # no update


def test_attached_steps_limit_stops_the_script_like_ctrl_c(tmp_path, default_run):
    """Issue 14: --steps 3 raises KeyboardInterrupt in the script after update 3: its except and
    finally blocks and its atexit handler run, the trace ends with reason steps; the stdout is the
    plain run's first two losses (the third print comes after step())."""
    reference = plain("cleanup").stdout.decode().splitlines()
    run, trace = attached(tmp_path, "cleanup", "--steps", "3")
    assert run.returncode == 0
    assert run.stdout.decode().splitlines() == reference[:2] + ["interrupted at 2", "finally ran", "atexit ran"]
    assert trace[-1] == {"event": "end", "steps": 3, "reason": "steps"}
    assert [s["loss"] for s in steps(trace)] == [float(x) for x in reference[:3]]


def test_attached_until_stops_where_it_holds(tmp_path, default_run):
    """Issue 14: --until "loss < 3" stops after the first step whose printed loss is under 3."""
    reference = [float(x) for x in plain("cleanup").stdout.decode().splitlines()[:-2]]
    first = next(i for i, x in enumerate(reference) if x < 3) + 1
    run, trace = attached(tmp_path, "cleanup", "--until", "loss < 3")
    assert run.returncode == 0
    assert trace[-1]["reason"] == "until" and trace[-1]["steps"] == first
    assert f"stopped after step {first}: loss < 3" in run.stderr.decode()


def test_attached_nan_origin_names_layer_3_at_step_5(default_run):
    """Issue 14: layer 3 divides by zero at step 5: the run stops there (exit 3) and names that
    module, from the forward it watched; the stdout is the plain run's first four losses (the
    fifth print comes after step())."""
    reference = plain("nan_layer3").stdout.decode().splitlines()
    assert math.isnan(float(reference[4]))
    run, trace = default_run("nan_layer3")
    assert run.returncode == 3
    assert run.stdout.decode().splitlines() == reference[:4]
    assert trace[-1]["reason"] == "nonfinite" and trace[-1]["steps"] == 5
    assert trace[-1]["message"] == "the output of module 3 (Divide)"
    assert run.stderr.decode().splitlines()[-1].endswith("step 5: the output of module 3 (Divide) became NaN/Inf")


def test_a_file_that_trains_nothing_is_one_line_exit_2(tmp_path):
    """Issue 14: a file that steps no optimizer and defines no scenario: one line, exit status 2,
    whether it reads as a script (it calls .step() and .backward(), but on nothing trained) or not."""
    for name in ("no_training", "no_training_calls"):
        run, _ = attached(tmp_path, name)
        assert run.returncode == 2, name
        lines = run.stderr.decode().splitlines()
        assert len(lines) == 1 and "Traceback" not in lines[0], name
    assert "without stepping an optimizer" in lines[0]


def test_attached_module_runs_as_python_dash_m(tmp_path, default_run):
    """Issue 14: gdtui -m hand_update, from the scripts' folder, runs it as python -m does."""
    reference = subprocess.run([sys.executable, "-m", "hand_update"], capture_output=True, env=_env(), cwd=SCRIPTS)
    run, trace = attached(tmp_path, "hand_update", cwd=SCRIPTS)
    assert run.returncode == 0, run.stderr.decode()
    assert run.stdout == reference.stdout
    assert [s["loss"] for s in steps(trace)] == printed_losses(reference.stdout)


@pytest.mark.parametrize("flag", [["--lr", "0.1"], ["--device", "cpu"], ["--gradcheck"]])
def test_attached_refuses_flags_the_script_decides(flag):
    """Issue 14: --lr and --device do not apply to a script (it chooses them): one line, exit 2."""
    run = subprocess.run([sys.executable, "-m", "gdtui", str(SCRIPTS / "hand_update.py"), "--headless", *flag],
                         capture_output=True, env=_env(), timeout=60)
    assert run.returncode == 2 and run.stdout == b""
    assert len(run.stderr.decode().splitlines()) == 1 and "does not apply to a training script" in run.stderr.decode()
