"""Where a scenario's NaN/Inf began (issue 14, "NaN origin, attached and in scenarios").

gdtui runs the step that went NaN/Inf again from its rewind checkpoint, with hooks on, and names
the first module whose output went non-finite, the first torch call of the file whose result did
(a model of plain functions), or the first tensor whose gradient did in backward. Each test
checks the step and the origin against a plain PyTorch loop over the scenario's own objects,
with plain forward and gradient hooks written out here.
"""

from __future__ import annotations

import io
import math

import torch

from gdtui.cli import main
from gdtui.engine import Session
from gdtui.engine.headless import run_headless
from tests.paths import BAD, DIAG
from tests.plain_loop import PlainLoop, read_trace

DIVIDE = DIAG / "divide_by_zero.py"
OVERFLOW = DIAG / "grad_overflow.py"
NAN_AT_2 = BAD / "nan_at_step_2.py"


def plain_first_bad_module(plain: PlainLoop, steps: int) -> tuple[int, str]:
    """Step the plain loop until the loss goes non-finite; the step and the first module (by its
    full name) whose output held a NaN or an Inf in that step's forward."""
    model = plain.ns["model"]
    seen: list[str] = []
    hooks = [m.register_forward_hook(lambda m, i, out, name=name: seen.append(name) if not torch.isfinite(out).all() else None)
             for name, m in model.named_modules() if name]
    try:
        for step in range(1, steps + 1):
            seen.clear()
            if not math.isfinite(plain.step()["loss"]):
                return step, seen[0]
    finally:
        for h in hooks:
            h.remove()
    raise AssertionError("the plain loop stayed finite")


def test_a_layer_that_divides_by_zero_at_step_5_is_named_headless(capsys, tmp_path):
    """Issue 14: layer 3 (body.3, Divide) divides by a buffer that reaches 0 at step 5; the plain loop's
    loss first goes NaN at step 5 and body.3's output is the first non-finite one there. Headless says
    both in its stop line, and the trace's end line carries the origin as a field."""
    step, module = plain_first_bad_module(PlainLoop(DIVIDE), 10)
    assert (step, module) == (5, "body.3")
    trace = tmp_path / "trace.jsonl"
    assert main([str(DIVIDE), "--headless", "--steps", "10", "--trace", str(trace)]) == 3
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == (
        f"{DIVIDE}: step 5: loss became NaN/Inf, first in the output of module body.3 (Divide); "
        "lower the learning rate (--lr) or check the data"
    )
    end = read_trace(trace)[-1]
    assert end == {"event": "end", "steps": 5, "reason": "nonfinite", "message": "loss",
                   "origin": "the output of module body.3 (Divide)"}


def test_the_losses_before_the_bad_step_are_the_plain_loops_after_the_replay():
    """Issue 14: finding the origin runs step 5 again; the session's losses and parameters after it are
    those of the plain loop (the replay changed no number, and the buffer went back too)."""
    plain = PlainLoop(DIVIDE)
    outs = [plain.step() for _ in range(5)]
    session = Session(DIVIDE)
    assert run_headless(session, 10, out=io.StringIO(), err=io.StringIO()) == 3
    assert session.step_count == 5 and session.last.origin == "the output of module body.3 (Divide)"
    assert list(session.losses[:4]) == [o["loss"] for o in outs[:4]] and math.isnan(session.losses[4])
    model = plain.ns["model"]
    assert float(session.scenario.model.body[3].scale) == float(model.body[3].scale) == 0.0
    for mine, theirs in zip(session.loop.tensors, plain.tensors):
        assert torch.equal(mine.isnan(), theirs.isnan())
        assert torch.equal(torch.nan_to_num(mine.detach()), torch.nan_to_num(theirs.detach()))


def test_an_overflowing_gradient_names_the_tensor_whose_gradient_went_inf(capsys):
    """Issue 14: grad_overflow's forward stays finite (plain loop: loss finite at step 1), but backward
    multiplies by 1e20 twice: the gradient of body.1's output is the first non-finite one (plain
    gradient hooks: body.3's and body.2's outputs get finite gradients, body.1's Inf)."""
    plain = PlainLoop(OVERFLOW)
    model = plain.ns["model"]
    grads: dict[str, torch.Tensor] = {}

    def keep(name):
        def hook(module, inputs, out):
            out.register_hook(lambda g: grads.__setitem__(name, g))
        return hook

    hooks = [model.body[i].register_forward_hook(keep(f"body.{i}")) for i in range(4)]
    out = plain.step()
    for h in hooks:
        h.remove()
    assert math.isfinite(out["loss"])
    assert torch.isfinite(grads["body.3"]).all() and torch.isfinite(grads["body.2"]).all()
    assert not torch.isfinite(grads["body.1"]).all()
    assert main([str(OVERFLOW), "--headless", "--steps", "5"]) == 3
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"{OVERFLOW}: step 1: body.0.weight became NaN/Inf, first in the gradient of the output of module "
        "body.1 (Scale); lower the learning rate (--lr) or check the data"
    )


def test_a_quiet_run_that_defers_its_checks_names_the_same_origin(capsys):
    """Issue 14: --quiet leaves the large tensors' checks to a checkpoint (body.0.weight has 2048
    elements), and the check that finds the first bad step probes it: same stop line and origin as
    the run that checks every step, for both scenarios."""
    for path in (DIVIDE, OVERFLOW):
        lines = {}
        for quiet in (False, True):
            assert main([str(path), "--headless", "--steps", "20", *(["--quiet"] if quiet else [])]) == 3
            lines[quiet] = capsys.readouterr().err.splitlines()[-1]
        assert lines[True] == lines[False] and ", first in the " in lines[True]
    session = Session(OVERFLOW, watch_activations=False, checkpoint_every=100)
    assert run_headless(session, 20, quiet=True, out=io.StringIO(), err=io.StringIO()) == 3
    assert session.last.step == 1 and session.last.origin == "the gradient of the output of module body.1 (Scale)"


def test_a_model_of_plain_functions_names_the_torch_call_and_its_line(capsys):
    """Issue 14: nan_at_step_2's model is log(x * w) (no module); the plain loop's loss first goes NaN
    at step 2, where x * w is negative, so log's result is where it began (line 7 of the file)."""
    plain = PlainLoop(NAN_AT_2)
    assert math.isfinite(plain.step()["loss"])
    w = plain.ns["w"].detach()
    assert (plain.ns["x"] * w < 0).any() and torch.log(plain.ns["x"] * w).isnan().any()
    assert math.isnan(plain.step()["loss"])
    assert main([str(NAN_AT_2), "--headless", "--steps", "5"]) == 3
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"{NAN_AT_2}: step 2: loss became NaN/Inf, first in the result of torch.log on line 7; "
        "lower the learning rate (--lr) or check the data"
    )


def test_hints_say_where_the_nan_began(capsys):
    """Issue 14: --hints prints it under the bad step's line (step 5 of divide_by_zero, as the plain loop finds)."""
    assert main([str(DIVIDE), "--headless", "--steps", "10", "--hints"]) == 3
    out = capsys.readouterr().out.splitlines()
    at = next(i for i, line in enumerate(out) if line.startswith("step    5"))
    assert out[at + 1] == "       ! loss went NaN/Inf at step 5; it began in the output of module body.3 (Divide)"


def test_finite_steps_run_once(tmp_path):
    """Issue 14: the probe costs a normal step nothing: a finite run calls the model once a step (plus
    the session's one check at load); only a step that goes NaN/Inf runs again. Counted in a class
    attribute, which a rewind does not put back. (With a checkpoint every k steps, the replay runs the
    steps from the last one, as rewind does.)"""
    path = tmp_path / "counted.py"
    path.write_text(DIVIDE.read_text().replace(
        "    def forward(self, x):\n        return self.body(x)",
        "    calls = []\n\n    def forward(self, x):\n        Net.calls.append(1)\n        return self.body(x)"))
    session = Session(path, checkpoint_every=1)  # the replay starts at step 4's checkpoint
    assert run_headless(session, 4, out=io.StringIO(), err=io.StringIO()) == 0
    assert len(session.scenario.namespace["Net"].calls) == 1 + 4
    assert session.step().nonfinite == "loss"
    assert len(session.scenario.namespace["Net"].calls) == 1 + 4 + 1 + 1  # step 5, then step 5 again


SQRT_AT_ZERO = (
    "import torch\n"
    "w = torch.tensor(3.0, requires_grad=True)\n"
    "def loss():\n"
    "    return torch.sqrt(w - 2.0) * 1.0\n"
    "optimizer = torch.optim.SGD([w], lr=2.0)\n"
)


def test_an_objective_of_plain_functions_names_the_gradient_of_a_call(tmp_path, capsys):
    """Issue 14: loss() = sqrt(w - 2) with no model; step 1 takes w from 3 to 2 (plain loop), so step 2's
    loss is sqrt(0) = 0, finite, while the gradient of w - 2 (line 4) is Inf: that result is named."""
    path = tmp_path / "sqrt_at_zero.py"
    path.write_text(SQRT_AT_ZERO)
    plain = PlainLoop(path)
    first = plain.step()
    assert first["params"] == [2.0]
    second = plain.step()
    assert second["loss"] == 0.0 and second["grads"] == [math.inf]
    assert main([str(path), "--headless", "--steps", "5"]) == 3
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"{path}: step 2: w became NaN/Inf, first in the gradient of the result of Tensor.sub on line 4; "
        "lower the learning rate (--lr) or check the data"
    )
