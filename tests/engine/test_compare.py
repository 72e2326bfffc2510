"""Manual mode against the optimizer: the two updates of a step and what makes them differ.

References: PlainLoop (tests/plain_loop.py), the notebooks' loop over the scenario's
own objects, whose actual optimizer.step() gives the optimizer's Δ; figures
derived by hand in each test.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from gdtui.engine import Session
from gdtui.engine.compare import compare_updates
from tests.engine.phase_probe import steps_with_probe
from tests.paths import DIAG, ROOT, seed_scenarios
from tests.plain_loop import PlainLoop


def flat(values):
    if isinstance(values, list):
        return [x for v in values for x in flat(v)]
    return [values]


def plain_deltas(path: Path, steps: int) -> list[list[list[float]]]:
    """The Δ (after − before, in float64 from the float32 values) each optim step of a plain loop made."""
    plain = PlainLoop(path)
    before = [flat(p.tolist()) for p in plain.tensors]
    out = []
    for _ in range(steps):
        after = [flat(p) for p in plain.step("optim")["params"]]
        out.append([[a - b for a, b in zip(pa, pb)] for pa, pb in zip(after, before)])
        before = after
    return out


def assert_optim_delta_is_the_plain_step(comparison, deltas, params):
    """Equal up to the plain loop's float32 arithmetic: one unit in the last place of p (the rounding
    of p + Δ), plus 1e-5 of Δ (the optimizer's own float32 sums and square roots)."""
    for t, want, p in zip(comparison.tensors, deltas, params):
        for got, w, x in zip(flat(t.optim.values), want, flat(p)):
            ulp = float(np.spacing(np.float32(max(abs(x), abs(x + w)))))
            assert got == pytest.approx(w, abs=ulp + 1e-5 * abs(w))


def plain_sgd_difference(params: list, grads: list, lr: float) -> float:
    """Both float32 updates done plainly from a plain loop's values: ``p -= lr * g`` against
    torch.optim.SGD's step, on fresh tensors; the largest difference of the results."""
    out = 0.0
    for p, g in zip(params, grads):
        p32, g32 = torch.tensor(p, dtype=torch.float32), torch.tensor(g, dtype=torch.float32)
        manual = p32.clone()
        manual -= lr * g32
        q = p32.clone().requires_grad_(True)
        q.grad = g32.clone()
        torch.optim.SGD([q], lr=lr).step()
        out = max(out, (q.detach().double() - manual.double()).abs().max().item())
    return out


EXACTLY = "plain SGD: optimizer.step() is p -= lr × grad, exactly what manual mode does"


@pytest.mark.parametrize("path", seed_scenarios(), ids=lambda p: p.stem)
def test_plain_sgd_against_manual_mode_reports_the_measured_difference(path):
    """Issue 12 case 35: the difference is the one the two float32 updates really make, done plainly
    from the step's own parameters and gradients (read at the update phase)."""
    session = Session(path)
    lr = session.panel.lrs_for("optim")[0]
    assert session.panel.lrs_for("manual")[0] == lr
    for _ in range(3):
        while session.next_phase != "update":
            session.step_phase()
        comparison = compare_updates(session)
        params = [p.tolist() for p in session.loop.tensors]
        grads = [p.grad.tolist() for p in session.loop.tensors]
        assert comparison.max_difference == plain_sgd_difference(params, grads, lr)
        assert (comparison.explanation == (EXACTLY,)) == (comparison.max_difference == 0)
        session.step()


def test_poly_nn_after_two_manual_steps_says_the_updates_differ():
    """Issue 12 case 35: after 2 manual steps of an nn.Linear polynomial fit, p -= lr·g and SGD.step()
    round differently in float32; M reports that measured difference (plain torch) and no "exactly"."""
    path = DIAG / "poly_nn.py"
    session, plain = Session(path), PlainLoop(path)
    for _ in range(2):
        session.step()
        plain.step("manual")
    params = [p.tolist() for p in plain.tensors]
    grads = plain.step("manual")["grads"]
    want = plain_sgd_difference(params, grads, 0.003)
    assert want > 0  # 1.49e-08 on CPU
    comparison = compare_updates(session)
    assert comparison.max_difference == want
    assert not any("exactly" in line for line in comparison.lines())
    assert f"largest difference {comparison.max_difference:.2g}" in comparison.explanation[0]


def test_not_gate_first_update_is_minus_lr_times_the_gradient():
    # The first gradients, from a plain loop: w 0.017345…, b −0.035532…; lr = 10.
    loop = PlainLoop(ROOT / "scenarios" / "not_gate.py")
    before = [p.tolist() for p in loop.tensors]
    plain = loop.step("manual")
    comparison = compare_updates(Session(ROOT / "scenarios" / "not_gate.py"))
    for t, g, p in zip(comparison.tensors, plain["grads"], before):
        p32 = torch.tensor(p)
        after = p32 - 10 * torch.tensor(g)  # p -= lr·g in float32; Δ = after − before, exact in float64
        want = (after.double() - p32.double()).tolist()
        assert t.manual.values == want
    assert comparison.step == 1
    assert comparison.lines()[0] == (
        "update of step 1: manual (p -= 10 × grad) vs SGD.step() "
        "(lr=10, momentum=0, dampening=0, weight_decay=0, nesterov=False, maximize=False)"
    )


def test_adam_moves_each_element_about_lr_and_says_why():
    path = DIAG / "adam.py"
    session = Session(path)
    first = compare_updates(session)
    # At the first step m̂ = g and v̂ = g², so Adam's Δ = −lr·g/(|g| + eps) ≈ −0.1·sign(g);
    # by hand, at a = 0.5, c = [−0.5, 0.25] every prediction is below its target, so every g < 0.
    for t in first.tensors:
        assert flat(t.optim.values) == pytest.approx([0.1] * len(flat(t.optim.values)), rel=1e-6)
    # By hand, manual mode: ∂/∂a = (2/8)·Σ r·x over the 8 residuals r = a·x + c − y (all negative)
    # = 0.25 × (−112.5) = −28.125, so manual Δa = 0.1 × 28.125 = 2.8125, and Adam's is 0.1.
    assert first.tensors[0].manual.values == [2.8125]
    assert first.max_difference == pytest.approx(2.7125, rel=1e-6)
    assert "Adam divides by √v̂ + eps (eps=1.000e-08): each element moves about lr whatever the gradient's size" in first.explanation
    deltas = plain_deltas(path, 5)
    plain = PlainLoop(path)
    params = [p.tolist() for p in plain.tensors]
    for k in range(5):
        comparison = compare_updates(session)
        assert comparison.step == k + 1 and comparison.optimizer == "Adam"
        assert_optim_delta_is_the_plain_step(comparison, deltas[k], params)
        params = plain.step("optim")["params"]
        session.step()


def test_momentum_equals_plain_sgd_at_the_first_step_then_adds_the_previous_step():
    path = DIAG / "momentum.py"
    session = Session(path)
    first = compare_updates(session)
    assert first.max_difference == 0.0
    assert "at the first step the buffer starts as the gradient itself, so this step equals plain SGD" in first.explanation
    session.step()
    second = compare_updates(session)
    (w,) = second.tensors
    (previous,) = plain_deltas(path, 1)[0]
    # optim Δ = −lr·(g₂ + 0.9·g₁) = manual Δ + 0.9 × the previous step.
    assert w.optim.values == pytest.approx(w.manual.values + 0.9 * previous[0], rel=1e-6)
    assert second.explanation == ("momentum=0.9: the step adds 0.9 × the previous step (the momentum buffer)",)


OTHERS = {
    "torch.optim.AdamW([a, c], lr=0.1, weight_decay=0.5)": "AdamW shrinks p directly by lr·wd·p (0.05 × p)",
    "torch.optim.Adam([a, c], lr=0.1, weight_decay=0.5, amsgrad=True)": "adds 0.5 × p to the gradient before the averages",
    "torch.optim.SGD([a, c], lr=0.1, momentum=0.5, nesterov=True)": "nesterov with momentum=0.5",
    "torch.optim.SGD([a, c], lr=0.1, momentum=0.5, dampening=0.25, weight_decay=0.1)": "dampening=0.25",
    "torch.optim.RMSprop([a, c], lr=0.01, centered=True, momentum=0.5)": "RMSprop divides the gradient by √(running mean of grad²)",
    "torch.optim.Adagrad([a, c], lr=0.1, lr_decay=0.01)": "Adagrad divides by √(sum of all past grad²) + eps",
    "torch.optim.Adamax([a, c], lr=0.1)": "Adamax has its own update rule and state",
}


@pytest.mark.parametrize("optimizer", list(OTHERS))
def test_other_optimizers_step_like_a_plain_loop_and_are_explained(optimizer, tmp_path):
    path = tmp_path / "scenario.py"
    path.write_text((DIAG / "adam.py").read_text().replace("torch.optim.Adam([a, c], lr=0.1)", optimizer))
    session = Session(path)
    deltas = plain_deltas(path, 3)
    plain = PlainLoop(path)
    params = [p.tolist() for p in plain.tensors]
    for k in range(3):
        comparison = compare_updates(session)
        assert_optim_delta_is_the_plain_step(comparison, deltas[k], params)
        params = plain.step("optim")["params"]
        session.step()
    assert any(OTHERS[optimizer] in line for line in comparison.explanation), comparison.explanation
    assert comparison.max_difference > 0


def test_every_phase_compares_the_same_update_until_it_has_run():
    session = Session(ROOT / "tests" / "diag_scenarios" / "dropout_loader.py")
    session.step()
    seen = []
    for _ in range(5):
        seen.append(compare_updates(session))
        session.step_phase()
    assert [c.step for c in seen] == [2, 2, 2, 2, 3]
    assert seen[0] == seen[1] == seen[2] == seen[3]
    assert seen[4].notes == ("step 2's update has already run; this is step 3's",)
    assert seen[4].tensors == compare_updates(session).tensors  # the next step's, now at its forward phase


@pytest.mark.parametrize("mode", ["optim", "manual"])
@pytest.mark.parametrize("name", ["scenarios/crop_yields.py", "tests/diag_scenarios/dropout_loader.py", "tests/diag_scenarios/adam.py"])
def test_comparing_at_every_phase_leaves_the_session_as_a_plain_loop(name, mode):
    path = ROOT / name
    got = steps_with_probe(path, compare_updates, 4, mode)
    plain = PlainLoop(path)
    assert got == [plain.step(mode) for _ in range(4)]


def test_the_hand_written_gradient_is_compared_when_it_is_the_source():
    # fit_2x's grad_fn at w = 0 is 2·Σx·(0 − 2x) = −120, so both modes step w by −0.01 × −120 = 1.2
    # (the scenario's docstring: "grad_fn: w after step 1 = 1.200").
    session = Session(ROOT / "scenarios" / "fit_2x.py", grad_source="grad_fn")
    for _ in range(4):  # forward, loss, backward, update
        (w,) = compare_updates(session).tensors
        assert w.manual.values == w.optim.values == pytest.approx(1.2, rel=1e-7)
        session.step_phase()
    assert session.step().params["w"].values == pytest.approx(1.2, rel=1e-7)
