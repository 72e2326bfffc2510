"""The gradient checker: autograd and grad_fn against finite differences, without touching the session.

References: figures derived by hand in each test, and PlainLoop (conftest.py),
the notebooks' loop over the scenario's own objects, for "the session is
unchanged" and "the check used the batch the step takes".
"""

from __future__ import annotations

import random
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import ROOT, PlainLoop, seed_scenarios
from gdtui.engine import ScenarioError, Session
from gdtui.engine.gradcheck import gradient_check
from gdtui.engine.scenario import MODULE_NAME

DIAG = Path(__file__).resolve().parent / "diag_scenarios"


def as_plain(record) -> dict:
    return {
        "loss": record.loss,
        "params": [v.values for v in record.params.values()],
        "grads": [v.values for v in record.grads.values()],
        "metrics": dict(record.metrics),
    }


def global_state():
    return torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate(), sys.modules.get(MODULE_NAME)


def assert_same_global_state(before):
    after = global_state()
    assert torch.equal(before[0], after[0])
    assert np.array_equal(before[1], after[1])
    assert before[2] == after[2]
    assert before[3] is after[3]


def steps_with_probe(path: Path, probe, steps: int, mode: str = "optim") -> list[dict]:
    """Step a session phase by phase, calling ``probe`` before every phase."""
    session = Session(path, mode=mode)
    records = []
    for _ in range(steps):
        record = None
        while record is None:
            before = global_state()
            probe(session)
            assert_same_global_state(before)
            record = session.step_phase()
        records.append(as_plain(record))
    return records


@pytest.mark.parametrize("path", seed_scenarios(), ids=lambda p: p.stem)
def test_autograd_agrees_with_finite_differences_on_every_seed_scenario(path):
    session = Session(path)
    for _ in range(2):
        report = gradient_check(session)
        for check in report.tensors:
            assert check.checked == check.numel  # every seed tensor is small: all entries checked
            assert check.verdict == "ok", report.lines()
            assert check.max_rel_error < 1e-6, report.lines()
        assert report.dtype == "float64"
        for _ in range(3):
            session.step()


def test_fit_2x_hand_written_gradient_is_flagged_four_times_autograd():
    # By hand, at w = 0: autograd (MSE) = (2/4)·Σ x·(0 − 2x) = −Σx² = −30;
    # grad_fn = 2·Σ x·(0 − 2x) = −120, four times as much.
    report = gradient_check(Session(ROOT / "scenarios" / "fit_2x.py"))
    assert report.loss == 30.0  # mean((2x)²) = (4 + 16 + 36 + 64) / 4
    (fn,) = report.grad_fn
    assert fn.verdict == "≈4× autograd"
    assert fn.ratio == pytest.approx(4.0, rel=1e-12)
    assert fn.max_abs_error == pytest.approx(90.0, rel=1e-12)
    assert not report.ok
    assert "  w  ≈4× autograd  (max abs diff 90)" in report.lines()


def test_sign_error_and_a_wrong_term_are_told_apart():
    report = gradient_check(Session(DIAG / "sign_error.py"))
    fn = {g.name: g for g in report.grad_fn}
    # By hand: residuals X@w + b − Y = [−0.5, −1.5, −1.75]; true ∂/∂b = (2/3)·(−3.75) = −2.5.
    assert fn["b"].verdict == "≈-1× autograd"
    assert fn["b"].max_abs_error == pytest.approx(5.0, rel=1e-12)
    assert fn["w"].verdict == "differs from autograd"
    assert all(t.verdict == "ok" for t in report.tensors)


def test_a_relu_exactly_at_its_corner_is_a_kink_not_a_mismatch():
    # relu(w·x) at w = 0: autograd gives 0 (the left slope); the right slope is
    # 2·(0 + 0.5·2 − 1.5)·2 = −2, so the central difference is −1, matching neither.
    report = gradient_check(Session(DIAG / "kink.py"))
    w, v = report.tensors
    assert (w.verdict, w.kinks) == ("at a kink", 1)
    assert v.verdict == "ok" and v.kinks == 0
    assert report.ok


def test_large_tensors_are_sampled_with_a_private_generator():
    session = Session(DIAG / "wide_linear.py")
    before = global_state()
    first = gradient_check(session, samples=8, seed=1)
    assert_same_global_state(before)
    weight, bias = first.tensors
    assert (weight.checked, weight.numel, bias.checked, bias.numel) == (8, 1920, 8, 40)
    assert weight.direction and bias.direction
    assert "weight: 8 of its 1920 entries and one random direction checked, drawn with seed 1" in first.notes
    assert gradient_check(session, samples=8, seed=1) == first
    assert all(t.verdict == "ok" for t in first.tensors)


@pytest.mark.parametrize("name", ["crop_yields", "dropout_loader"])
def test_the_check_evaluates_the_batch_and_dropout_mask_the_next_step_takes(name):
    path = ROOT / "scenarios" / "crop_yields.py" if name == "crop_yields" else DIAG / "dropout_loader.py"
    session = Session(path)
    ahead, during = [], []
    for _ in range(4):  # through an epoch boundary (3 batches an epoch)
        ahead.append(gradient_check(session))
        session.step_phase()  # forward: now the check uses the step in progress's batch
        during.append(gradient_check(session))
        session.step()
    plain = PlainLoop(path)
    losses = [plain.step()["loss"] for _ in range(4)]
    # float64 against float32: equal to float32 precision, so the same rows and the same mask.
    assert [r.loss for r in ahead] == pytest.approx(losses, rel=1e-5)
    assert [r.batch for r in ahead] == [f"the next batch, step {n}'s (epoch {e}, batch {b})"
                                        for n, e, b in [(1, 1, 1), (2, 1, 2), (3, 1, 3), (4, 2, 1)]]
    assert during[3].batch == "step 4's batch (epoch 2, batch 1)"
    if name == "crop_yields":
        assert [r.loss for r in during] == pytest.approx(losses, rel=1e-5)
        assert not any(r.notes for r in ahead + during)
    else:  # the forward in progress already drew its dropout mask, and the check says so
        assert "the ones step 1's forward will draw" in ahead[0].notes[0]
        assert "not the ones step 1's forward already drew" in during[0].notes[0]


@pytest.mark.parametrize("mode", ["optim", "manual"])
@pytest.mark.parametrize("name", ["scenarios/crop_yields.py", "scenarios/fit_2x.py", "tests/diag_scenarios/dropout_loader.py"])
def test_checking_at_every_phase_leaves_the_session_as_a_plain_loop(name, mode):
    path = ROOT / name
    got = steps_with_probe(path, gradient_check, 4, mode)
    plain = PlainLoop(path)
    assert got == [plain.step(mode) for _ in range(4)]


def test_a_changed_file_asks_for_a_reset_and_changes_nothing(tmp_path):
    path = tmp_path / "quadratic.py"
    shutil.copy(ROOT / "scenarios" / "quadratic.py", path)
    session = Session(path)
    session.step()
    path.write_text(path.read_text().replace("torch.tensor(5,", "torch.tensor([5, 5],"))
    before = global_state()
    with pytest.raises(ScenarioError, match="changed since the session loaded it.*reset first"):
        gradient_check(session)
    assert_same_global_state(before)
    # x after steps 2, 3 = 2.84, 2.072 (the scenario's docstring), as if nothing happened.
    assert [session.step().params["x"].values for _ in range(2)] == pytest.approx([2.84, 2.072], rel=1e-6)


def test_tensors_shared_through_an_imported_module_are_never_touched(tmp_path):
    (tmp_path / "gdtui_test_shared_points.py").write_text(
        "import torch\nX = torch.tensor([1.0, 2.0, 3.0])\nY = torch.tensor([2.0, 4.0, 7.0])\n"
    )
    path = tmp_path / "shared.py"
    path.write_text(
        "import torch\nfrom gdtui_test_shared_points import X, Y\n"
        "w = torch.tensor(0.5, requires_grad=True)\n"
        "def model(x):\n    return w * x\n"
        "def loss_fn(pred, y):\n    return ((pred - y) ** 2).mean()\n"
        "data = (X, Y)\noptimizer = torch.optim.SGD([w], lr=0.01)\n"
    )
    try:
        session = Session(path)
        report = gradient_check(session)
        (w,) = report.tensors
        assert w.verdict == "ok"
        assert "some tensors are shared with the session (imported from another module) and kept their dtype" in report.notes
        assert session.loop.sc.full_batch[0].dtype == torch.float32  # the session's data were not converted
        # By hand: ∂/∂w mean((w·x − y)²) = (2/3)·Σ x(w·x − y) at w = 0.5 = (2/3)·(−1.5 − 6 − 16.5) = −16.
        assert session.step().grads["w"].values == pytest.approx(-16.0, rel=1e-6)
    finally:
        sys.modules.pop("gdtui_test_shared_points", None)
