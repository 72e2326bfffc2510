"""Stop conditions, health hints and the skip-zero_grad toggle. References: plain loops and the notebooks."""

from __future__ import annotations

import math

import pytest
import torch

from gdtui.cli import main
from gdtui.engine import Session
from gdtui.engine.conditions import parse_condition, record_env
from tests.paths import DIAG, SCENARIOS, seed_scenarios
from tests.plain_loop import PlainLoop, read_trace


def first_step_below(path, threshold):
    """The notebook's loop with `if l < 0.001: break`, written out."""
    loop = PlainLoop(path)
    for step in range(1, 1000):
        if loop.step(loop.ns.get("mode", "optim"))["loss"] < threshold:
            return step
    raise AssertionError("never")


def test_until_stops_where_the_notebook_breaks(tmp_path, capsys):
    path = SCENARIOS / "fit_2x.py"
    trace = tmp_path / "t.jsonl"
    assert main([str(path), "--headless", "--until", "loss < 0.001", "--trace", str(trace), "--quiet"]) == 0
    lines = read_trace(trace)
    assert lines[-1] == {"event": "end", "steps": 33, "reason": "until", "message": "loss < 0.001"}
    assert first_step_below(path, 0.001) == 33
    assert "stopped after step 33: loss < 0.001" in capsys.readouterr().out


def test_break_stops_a_headless_run(capsys):
    path = SCENARIOS / "not_gate.py"
    assert main([str(path), "--headless", "--break", 'param_norm["w"] < 2.5', "--quiet"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-1] == 'stopped after step 4: param_norm["w"] < 2.5'  # w = 2.3969853 after step 4


@pytest.mark.parametrize(
    "text",
    ["loss <", "los < 1", "__import__('os').system('true')", "loss.real > 0", "grad_norm['nope'] > 1", "param_norm > 1", "loss < 'a'"],
)
def test_invalid_expression_is_one_line_before_any_step(text, capsys):
    assert main([str(SCENARIOS / "not_gate.py"), "--headless", "--until", text]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert captured.err.startswith("--until ")


def test_expressions_see_every_documented_name():
    session = Session(SCENARIOS / "logistic_regression.py")
    session.step()
    record = session.step()
    env = record_env(record, session.losses[-2])
    tensors = list(record.params)
    cond = parse_condition(
        f'step == 2 and epoch == 2 and lr == 1 and accuracy >= 0 and loss_delta < 0 and grad_norm > 0 '
        f'and grad_norm["{tensors[0]}"] > 0 and param_norm["{tensors[0]}"] > 0 and update_ratio["{tensors[0]}"] > 0 '
        f'and abs(loss_delta) == -loss_delta and max(loss, 1) == 1 and isfinite(log10(loss))',
        metrics=["accuracy"],
        tensors=tensors,
    )
    assert cond.holds(env)
    assert env["loss_delta"] == session.losses[1] - session.losses[0]
    assert env["grad_norm"] == pytest.approx(math.sqrt(sum(g.norm**2 for g in record.grads.values())))


def test_rising_loss_condition_is_off_by_default_and_stops_when_on(capsys):
    path = SCENARIOS / "quadratic.py"
    # lr 1.05 makes x oscillate with a growing amplitude: the loss rises every step.
    assert main([str(path), "--headless", "--lr", "1.05", "--steps", "6", "--quiet"]) == 0
    assert main([str(path), "--headless", "--lr", "1.05", "--stop-on-rise", "3", "--quiet"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "stopped after step 4: loss rose 3 steps in a row"


def test_nan_always_stops(tmp_path):
    from tests.paths import BAD

    assert main([str(BAD / "nan_at_step_2.py"), "--headless", "--steps", "50", "--quiet"]) == 3


def test_dead_relu_is_reported_at_the_step_the_unit_dies():
    session = Session(SCENARIOS / "dead_relu.py")
    records = [session.step() for _ in range(4)]
    # The dead_relu.py docstring: units 0 and 2 of linear1 are dead from the start (negative
    # pre-activations), unit 1 dies in step 2's update; the forward of step 3 is the first to see it.
    linear1 = [d for d in records[0].dead_units if d.site == "linear1"]
    assert linear1 and linear1[0].units == (0, 2) and linear1[0].width == 3
    third = {d.site: d for d in records[2].dead_units}
    assert third["linear1"].units == (0, 1, 2) and third["linear1"].since == (1, 3, 1)
    assert any("unit 1 died in step 2's update" in h.message for h in records[2].hints)
    assert records[3].loss == 100.0  # stuck at y² as the notebook shows
    assert any(h.kind == "vanishing" for h in records[3].hints)


def test_dead_units_found_through_nn_relu_and_functional_relu(tmp_path):
    path = tmp_path / "relus.py"
    path.write_text(
        "import torch\n"
        "from torch import nn\n"
        "torch.manual_seed(0)\n"
        "model = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 1))\n"
        "with torch.no_grad():\n"
        "    model[0].bias[2] = -100.0\n"
        "loss_fn = nn.MSELoss()\n"
        "data = (torch.randn(8, 2), torch.randn(8, 1))\n"
        "optimizer = torch.optim.SGD(model.parameters(), lr=0.01)\n"
    )
    record = Session(path).step()
    assert [(d.site, d.units, d.samples) for d in record.dead_units] == [("0", (2,), 8)]


def test_skipping_zero_grad_accumulates_the_sum_of_gradients():
    path = SCENARIOS / "not_gate.py"
    session = Session(path)
    session.panel.set_skip_zero_grad(True)
    plain = PlainLoop(path)
    w, b = plain.tensors
    total = [torch.zeros_like(w), torch.zeros_like(b)]
    for _ in range(4):
        x, y = plain.ns["data"]
        loss = plain.ns["loss_fn"](plain.ns["model"](x), y)
        fresh = torch.autograd.grad(loss, [w, b])
        total = [t + g for t, g in zip(total, fresh)]
        with torch.no_grad():
            w.grad, b.grad = total[0].clone(), total[1].clone()
        plain.opt.step()  # no zero_grad
        record = session.step()
        assert [g.values for g in record.grads.values()] == [t.tolist() for t in total]
        assert [p.values for p in record.params.values()] == [w.tolist(), b.tolist()]
        assert not record.zero_grad
        assert any(h.kind == "accumulating" for h in record.hints)
    # rewinding with accumulated gradients is still exact
    last = record
    session.rewind(2)
    session.step()
    assert session.step() == last


def test_tensor_outside_the_optimizer_is_named(tmp_path):
    path = tmp_path / "untracked.py"
    path.write_text(
        "import torch\n"
        "w = torch.zeros(1, requires_grad=True)\n"
        "b = torch.zeros(1, requires_grad=True)\n"
        "model = lambda x: x * w + b\n"
        "loss_fn = lambda p, y: ((p - y) ** 2).mean()\n"
        "data = (torch.ones(3, 1), torch.ones(3, 1))\n"
        "optimizer = torch.optim.SGD([w], lr=0.1)\n"
    )
    session = Session(path)
    assert session.untracked == ["b"]
    assert any(h.kind == "untracked" and h.tensor == "b" for h in session.state().hints)
    assert any(h.kind == "untracked" for h in session.step().hints)


def test_hints_stay_quiet_on_a_healthy_run():
    session = Session(SCENARIOS / "logistic_regression.py")
    for _ in range(20):
        record = session.step()
    assert [h.kind for h in record.hints if h.kind in ("dead_relu", "vanishing", "exploding", "diverging", "frozen")] == []


def test_an_infinite_parameter_is_named_even_when_the_loss_stays_finite():
    session = Session(SCENARIOS / "not_gate.py")
    with torch.no_grad():
        session.loop.tensors[1].fill_(float("inf"))  # b = inf: sigmoid saturates at 1, the loss is 0.5
    record = session.step()
    assert record.loss == 0.5
    assert record.nonfinite == "b"


def test_headless_gradcheck_flags_the_hand_written_gradient(capsys):
    # fit_2x.py's grad_fn is 2·Σx(ŷ−y): n = 4 times the true MSE gradient (seed 001, part 1).
    assert main([str(SCENARIOS / "fit_2x.py"), "--headless", "--gradcheck"]) == 1
    out = capsys.readouterr().out
    assert "w  ≈4× autograd" in out
    assert "max rel err" in out and " ok" in out  # autograd itself passes


@pytest.mark.parametrize("path", seed_scenarios(), ids=lambda p: p.stem)
def test_headless_gradcheck_passes_every_seed_scenarios_autograd(path, capsys):
    args = [str(path), "--headless", "--gradcheck", "--steps", "2", "--quiet"]
    status = main(args)
    out = capsys.readouterr().out
    if path.stem == "fit_2x":
        assert status == 1 and "≈4× autograd" in out
    else:
        assert status == 0, out
        assert "mismatch" not in out


def test_headless_compare_for_plain_sgd_reports_the_last_digit_it_rounds(capsys):
    """Issue 12 case 35, headless: on not_gate, torch's SGD.step() puts b one float32 step from
    manual mode's b -= 10 * grad (the scenario's docstring: 1.3553203 against 1.3553205); the
    report gives that measured difference and does not say "exactly"."""
    import torch

    w = torch.tensor([[3.0]], requires_grad=True)
    b = torch.tensor([[1.0]], requires_grad=True)
    x, y = torch.tensor([[0.0], [1.0]]), torch.tensor([1.0, 0.0])
    torch.mean(torch.square(torch.sigmoid(w @ x.T + b) - y)).backward()
    manual = b.detach() - 10 * b.grad
    optimizer = torch.optim.SGD([b], lr=10)
    optimizer.step()
    want = (b.detach() - manual).abs().max().item()
    assert want > 0

    assert main([str(SCENARIOS / "not_gate.py"), "--headless", "--compare", "--optimizer-state"]) == 0
    out = capsys.readouterr().out
    assert f"largest difference: {want:.2g}" in out and "exactly" not in out
    assert "plain SGD keeps no state" in out


def test_the_activation_watch_ends_after_a_forward_that_calls_no_relu():
    sigmoid = Session(SCENARIOS / "not_gate.py", watch_activations=True)
    sigmoid.step()
    assert sigmoid.loop.watch is None  # no ReLU, no unit to die: every torch call is no longer seen
    relu = Session(SCENARIOS / "dead_relu.py", watch_activations=True)
    relu.step()
    relu.step()
    assert relu.loop.watch is not None and relu.last.dead_units
    relu.reset()
    assert relu.loop.watch is not None


def test_gradcheck_samples_sets_the_entries_checked_and_out_of_memory_is_one_line(capsys, monkeypatch):
    """Issue 12 case 18: --gradcheck-samples N checks N entries of a large tensor whose random direction
    disagrees (wrong_scale's w1, 8192 entries; case 34: wide_linear's weight agrees, so none), and an
    out-of-memory error (simulated: the float64 copies' allocation raises) is one line, exit status 2,
    naming the sample size to use."""
    from gdtui.engine import gradcheck

    folder = DIAG
    assert main([str(folder / "wrong_scale.py"), "--headless", "--gradcheck", "--gradcheck-samples", "12"]) == 1
    out = capsys.readouterr().out
    assert "  w1  1 direction + 12/8192 entries" in out and out.count("mismatch") == 1
    wide = str(folder / "wide_linear.py")
    assert main([wide, "--headless", "--gradcheck", "--gradcheck-samples", "12"]) == 0
    out = capsys.readouterr().out
    assert "  weight  1 direction of 1920 entries" in out

    def no_memory(self):
        raise MemoryError

    monkeypatch.setattr(gradcheck._InPlace, "__enter__", no_memory)
    assert main([wide, "--headless", "--gradcheck", "--gradcheck-samples", "12"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    assert "gradient check: out of memory" in err and "free memory" in err
    assert "--gradcheck-samples 3" not in err  # fewer samples would not help: the copies are what ran out
