"""The gradient checker: autograd and grad_fn against finite differences, without touching the session.

References: figures derived by hand in each test, and PlainLoop (tests/plain_loop.py),
the notebooks' loop over the scenario's own objects, for "the session is
unchanged" and "the check used the batch the step takes".
"""

from __future__ import annotations

import sys

import pytest
import torch

from gdtui.engine import ScenarioError, Session
from gdtui.engine.gradcheck import gradient_check
from tests.engine.phase_probe import as_plain, assert_same_global_state, global_state, steps_with_probe
from tests.paths import DIAG, ROOT, seed_scenarios
from tests.plain_loop import PlainLoop


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


def test_large_tensors_are_checked_along_a_direction_drawn_with_a_private_generator():
    session = Session(DIAG / "wide_linear.py")
    before = global_state()
    first = gradient_check(session, samples=8, seed=1)
    assert_same_global_state(before)
    weight, bias = first.tensors
    # both agree along their direction, so no entry is measured on its own
    assert (weight.checked, weight.numel, bias.checked, bias.numel) == (0, 1920, 0, 40)
    assert weight.direction and bias.direction
    assert ("tensors of more than 32 entries are checked along one random direction over all their entries "
            "(drawn with seed 1), and at 8 of their entries where it disagrees") in first.notes
    assert "  weight  1 direction of 1920 entries" in "\n".join(first.lines())
    assert gradient_check(session, samples=8, seed=1) == first
    assert all(t.verdict == "ok" for t in first.tensors)


def test_a_correct_large_tensor_costs_two_loss_evaluations(tmp_path):
    """Issue 12 case 34: the check was slow. Each tensor of more than 32 entries cost 2 evaluations per
    sampled entry and 2 for its direction (4 samples: 10, and 4 more per kink re-check). A large tensor
    whose direction agrees now costs 2; the counter counts the loss evaluations: 1 for autograd's
    gradient, then 2 for the weight (1920 entries) and 2 for the bias (40 entries)."""
    path = tmp_path / "counted.py"
    path.write_text(
        "import torch\ntorch.manual_seed(1)\nlayer = torch.nn.Linear(48, 40)\ncalls = []\n"
        "def model(x):  # a function: evaluated one perturbation at a time\n"
        "    calls.append(1)\n    return torch.tanh(layer(x))\n"
        "loss_fn = torch.nn.MSELoss()\ndata = (torch.randn(16, 48), torch.randn(16, 40))\n"
        "optimizer = torch.optim.SGD(layer.parameters(), lr=0.1)\n"
    )
    session = Session(path)
    calls = session.loop.sc.namespace["calls"]
    calls.clear()
    report = gradient_check(session)
    assert [t.verdict for t in report.tensors] == ["ok", "ok"], report.lines()
    assert len(calls) == 1 + 2 + 2


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


def test_a_changed_file_is_not_what_the_check_runs(tmp_path):
    """Issue 12 case 21: the check ran the file on disk, so after an edit it said "ok" about code the
    session is not running. The session runs wrong_backward.py's wrong Cube.backward; the file is then
    corrected on disk. The check must still find the session's mismatch, say the file changed, and not
    execute the file (its load counter stays at one)."""
    path = tmp_path / "wrong_backward.py"
    counter = tmp_path / "loads.txt"
    source = (DIAG / "wrong_backward.py").read_text()
    path.write_text(source + f"\nwith open({str(counter)!r}, 'a') as f:\n    f.write('load\\n')\n")
    session = Session(path)
    session.step()
    path.write_text(path.read_text().replace("return grad * x**2  # wrong: 3 * x**2", "return grad * 3 * x**2"))
    before = global_state()
    report = gradient_check(session)
    assert_same_global_state(before)
    assert report.live
    assert [t.verdict for t in report.tensors][:2] == ["mismatch", "mismatch"]
    assert any("changed since the session loaded it: this checked the code the session runs" in n for n in report.notes)
    assert counter.read_text() == "load\n"  # loaded once, by the session; the check ran nothing again


def test_a_tensor_gdtui_cannot_reach_falls_back_to_a_fresh_load_and_says_so(tmp_path):
    """Issue 12 case 21: a float32 tensor held where gdtui cannot find it (an attribute of the
    scenario's own class) cannot be made float64 in place, and a matmul refuses to mix it with float64:
    the check loads the file again, in float64, and says so. By hand: d/dw mean((w·s·x − y)²) at w = 0.5, s = 2: (2/3)·Σ 2x(x − y) = (4/3)·(−17)."""
    path = tmp_path / "holder.py"
    path.write_text(
        "import torch\nclass Holder:\n    def __init__(self):\n        self.scale = torch.tensor([2.0])\n"
        "holder = Holder()\nw = torch.tensor([0.5], requires_grad=True)\n"
        "def model(x):\n    return w * (holder.scale[None, :] @ x[None, :])\n"
        "def loss_fn(pred, y):\n    return ((pred.reshape(-1) - y) ** 2).mean()\n"
        "data = (torch.tensor([1.0, 2.0, 3.0]), torch.tensor([2.0, 4.0, 7.0]))\n"
        "optimizer = torch.optim.SGD([w], lr=0.01)\n"
    )
    session = Session(path)
    report = gradient_check(session)
    assert not report.live
    assert report.dtype == "float64"
    assert any(n.startswith("checked a fresh load of the file, not the session's own objects") for n in report.notes)
    assert report.tensors[0].verdict == "ok"
    assert session.step().grads["w"].values == pytest.approx([-68 / 3], rel=1e-6)


@pytest.mark.parametrize("mode", ["optim", "manual"])
def test_checking_a_batchnorm_net_at_every_phase_leaves_it_as_a_plain_loop(mode):
    """Issue 12 case 21: the check converts the session's own tensors in place (BatchNorm's running
    statistics and num_batches_tracked included) and gives them back bit for bit."""
    path = DIAG / "resnet_block.py"
    got = steps_with_probe(path, lambda s: gradient_check(s, samples=1), 3, mode)
    plain = PlainLoop(path)
    assert got == [plain.step(mode) for _ in range(3)]


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
        assert report.live and report.dtype == "float64"
        # converted in place for the check, and given back: the session's data, and the module's
        assert session.loop.sc.full_batch[0].dtype == torch.float32
        assert sys.modules["gdtui_test_shared_points"].X.dtype == torch.float32
        # By hand: ∂/∂w mean((w·x − y)²) = (2/3)·Σ x(w·x − y) at w = 0.5 = (2/3)·(−1.5 − 6 − 16.5) = −16.
        assert session.step().grads["w"].values == pytest.approx(-16.0, rel=1e-6)
    finally:
        sys.modules.pop("gdtui_test_shared_points", None)


@pytest.mark.parametrize("name", ["mnist_cnn", "resnet_block"])
def test_no_false_mismatch_on_a_cnn_with_max_pool_or_a_resnet_block(name):
    """Issue 12 case 32: a step of 6e-6·max(1, |p|) and a 1e-5 tolerance called the MNIST-style CNN's
    conv1 a "mismatch" (64 sampled entries, max rel err 0.037). Each tensor now gets its own step, and an
    entry whose difference moves with the step (a ReLU or max-pool corner in reach) is a kink."""
    session = Session(DIAG / f"{name}.py")
    for seed in range(2):
        report = gradient_check(session, samples=64, seed=seed)
        assert report.ok, report.lines()
        assert all(t.verdict in ("ok", "at a kink") for t in report.tensors)
        assert sum(t.kinks for t in report.tensors) <= 3  # a kink is the exception, not a way to pass


def test_a_wrong_backward_is_still_a_mismatch():
    """Issue 12 case 32: the kink test must not excuse a wrong gradient. Cube.backward gives x²
    instead of 3x², so layer's gradients are off by a factor that varies: relative error 2/3 exactly
    where the ReLU passes (by hand: |x² − 3x²| / |3x²|)."""
    report = gradient_check(Session(DIAG / "wrong_backward.py"), samples=64)
    weight, bias, head_w, head_b = report.tensors
    assert (weight.verdict, bias.verdict) == ("mismatch", "mismatch")
    assert weight.max_rel_error == pytest.approx(2 / 3, rel=1e-4)
    assert (head_w.verdict, head_b.verdict) == ("ok", "ok")
    assert not report.ok


def test_float_tensors_made_in_forward_are_float64_in_the_check():
    """Issue 12 case 33: a DCGAN-style forward's torch.full(..., dtype=torch.float) and torch.ones(...)
    fed a convolution float32 input and the check crashed ("Input type (float) and bias type (double)").
    The check runs with float64 as the default dtype and reads dtype=torch.float as float64."""
    path = DIAG / "dcgan_forward.py"
    session = Session(path)
    report = gradient_check(session)
    assert report.dtype == "float64" and report.ok, report.lines()
    assert "line 18 asks for a float32 tensor: the check made it float64" in report.notes
    assert torch.get_default_dtype() == torch.float32
    plain = PlainLoop(path)
    assert as_plain(session.step()) == plain.step()


def test_a_float32_tensor_still_made_in_forward_is_named_by_its_line(tmp_path):
    """Issue 12 case 33: ``.float()`` cannot be read as float64; the error names the line that made it."""
    path = tmp_path / "to_float.py"
    path.write_text(
        "import torch\nconv = torch.nn.Conv2d(1, 2, 3)\n"
        "def model(x):\n    x = x.float()\n    return conv(x).mean((1, 2, 3))\n"
        "loss_fn = torch.nn.MSELoss()\ndata = (torch.randn(4, 1, 5, 5), torch.randn(4))\n"
        "optimizer = torch.optim.SGD(conv.parameters(), lr=0.1)\n"
    )
    with pytest.raises(ScenarioError, match=r"to_float.py:4: gradient check: this line makes a float32 tensor"):
        gradient_check(Session(path))
    assert torch.get_default_dtype() == torch.float32


def test_out_of_memory_is_one_line_with_what_it_needed(monkeypatch):
    """Issue 12 case 18: a model too large for float64 gave an out-of-memory traceback. Simulated here:
    the float64 working copies' allocation raises as torch's CPU allocator does."""
    from gdtui.engine import gradcheck

    session = Session(DIAG / "wide_linear.py")

    def no_memory(self):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:114] DefaultCPUAllocator: not enough memory: "
                           "you tried to allocate 15360 bytes.")

    monkeypatch.setattr(gradcheck._InPlace, "__enter__", no_memory)
    with pytest.raises(ScenarioError) as caught:
        gradient_check(session, samples=8)
    text = str(caught.value)
    assert "\n" not in text
    # by hand: weight 40·48 + bias 40 + inputs 16·48 + targets 16·40 = 3368 float64 numbers = 26.3 KiB
    assert "its float64 copies of the 4 tensors the loss uses need 26.3 KiB" in text
    assert "free memory" in text and "--gradcheck-samples does not change this" in text
    assert session.step().loss == PlainLoop(DIAG / "wide_linear.py").step()["loss"]


def test_a_batch_of_perturbed_forwards_that_does_not_fit_runs_one_at_a_time(monkeypatch):
    """Issue 12 case 18: memory for a batch of perturbed forwards is not memory for the check. When
    the batch does not fit, the check evaluates one perturbation at a time and still finds
    wide_linear's gradients right (they are autograd's), so it never advises fewer samples."""
    from gdtui.engine import gradcheck

    def no_memory(self, t, rows, v):
        raise RuntimeError("DefaultCPUAllocator: not enough memory: you tried to allocate 1 bytes.")

    tried = []
    monkeypatch.setattr(gradcheck._Probe, "_batched", lambda *a: tried.append(1) or no_memory(*a))
    report = gradient_check(Session(DIAG / "wide_linear.py"))
    assert tried and report.ok and report.tensors
    for check in report.tensors:
        assert check.verdict == "ok" and check.max_rel_error < 1e-6, report.lines()


@pytest.mark.parametrize("seed", range(3))
def test_a_direction_over_corners_does_not_excuse_a_one_percent_wrong_gradient(seed):
    """Issue 12 case 34: a large tensor is now checked along its random direction first, and its entries
    only where that disagrees by more than corners explain. In this two-ReLU net the difference along w1's
    direction (seed 0) is 2.6% off at h from the corners it crosses, more than the 1% error of the
    hand-written gradient: the rule must still send the check to w1's entries, where it is a mismatch
    (relative error 0.01/1.01 by hand)."""
    report = gradient_check(Session(DIAG / "wrong_scale.py"), seed=seed)
    w1 = report.tensors[0]
    assert w1.verdict == "mismatch", report.lines()
    assert w1.max_rel_error == pytest.approx(0.01 / 1.01, rel=1e-3)
    assert not report.ok
