"""Session behaviour: phases, controls, history budget, reset. References: PlainLoop or hand-computed figures."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch

from gdtui.engine import PHASES, ScenarioError, Session, StepError
from gdtui.engine.runner import StepPlan
from gdtui.engine.summarize import format_number, format_values, format_view, summarize
from tests.paths import SCENARIOS
from tests.plain_loop import PlainLoop

NOT_GATE = SCENARIOS / "not_gate.py"
CROP = SCENARIOS / "crop_yields.py"


def values(record_or_state):
    return [v.values for v in record_or_state.params.values()]


def test_phases_run_in_order_and_show_each_result():
    session = Session(NOT_GATE)
    plain = PlainLoop(NOT_GATE).step()
    seen = []
    for phase in PHASES:
        assert session.next_phase == phase
        seen.append(session.step_phase())
        state = session.state()
        if phase == "loss":
            assert state.loss == plain["loss"]
        if phase == "backward":
            assert [g.values for g in state.grads.values()] == plain["grads"]
        if phase == "update":
            assert values(state) == plain["params"]
    assert seen[:4] == [None] * 4 and seen[4].step == 1
    assert session.next_phase == "forward" and session.step_count == 1
    assert all(g is None for g in session.state().grads.values())  # optimizer.zero_grad() sets them to None


def test_step_mid_phase_finishes_the_current_step():
    session = Session(NOT_GATE)
    session.step_phase()
    session.step_phase()
    record = session.step()
    assert record.step == 1 and values(record) == PlainLoop(NOT_GATE).step()["params"]


def test_lr_changes_apply_from_the_next_step():
    session = Session(NOT_GATE)
    plain = PlainLoop(NOT_GATE)
    session.step()
    plain.step()
    session.panel.scale_lr(0.5)
    plain.opt.param_groups[0]["lr"] = 5.0
    record = session.step()
    assert record.lr == 5.0 and values(record) == plain.step()["params"]
    session.panel.set_lr(0.25)
    plain.opt.param_groups[0]["lr"] = 0.25
    assert values(session.step()) == plain.step()["params"]
    with pytest.raises(ValueError):
        session.panel.set_lr(-1)
    with pytest.raises(ValueError):
        session.panel.set_lr(float("nan"))
    assert session.lr == 0.25


def test_manual_mode_with_momentum_is_vanilla_sgd_and_says_so(tmp_path):
    path = tmp_path / "momentum.py"
    path.write_text(
        "import torch\n"
        "w = torch.tensor([1.0, -2.0], requires_grad=True)\n"
        "model = lambda x: x @ w\n"
        "loss_fn = lambda p, y: ((p - y) ** 2).mean()\n"
        "data = (torch.tensor([[1.0, 2.0], [3.0, 1.0]]), torch.tensor([1.0, 0.0]))\n"
        "optimizer = torch.optim.SGD([w], lr=0.05, momentum=0.9)\n"
    )
    session = Session(path, mode="manual")
    assert any("momentum=0.9" in note for note in session.notes)
    w = torch.tensor([1.0, -2.0], requires_grad=True)
    x, y = torch.tensor([[1.0, 2.0], [3.0, 1.0]]), torch.tensor([1.0, 0.0])
    for _ in range(3):
        loss = ((x @ w - y) ** 2).mean()
        loss.backward()
        with torch.no_grad():
            w -= 0.05 * w.grad
        w.grad.zero_()
        assert session.step().params["w"].values == w.tolist()


def test_history_budget_limits_rewind_and_says_so():
    budget_mb = 0.05
    session = Session(CROP, history_mb=budget_mb, checkpoint_every=1)
    for _ in range(30):
        session.step()
        assert session.rewinder.history.nbytes <= budget_mb * 2**20
    depth = session.rewind_depth
    assert 1 < depth < 30
    assert f"rewind reaches the last {depth} steps" in session.history_note
    assert session.rewind(40) == depth and session.step_count == 30 - depth


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads resident memory from /proc (Linux)")
def test_history_memory_stays_within_the_budget():
    """10 000 steps of not_gate with a 4 MB budget: resident memory grows by less than the budget.

    Each snapshot counts its tensors, its RNG states (shared with the previous
    snapshot when unchanged) and the step record it keeps alive.
    """
    def rss_mb():
        return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20

    session = Session(NOT_GATE, history_mb=4, watch_activations=False, checkpoint_every=1)
    for _ in range(2000):
        session.step()
    before = rss_mb()
    for _ in range(10_000):
        session.step()
    assert rss_mb() - before < 4 + 2  # the budget, and a little slack for the allocator
    assert session.rewind_depth < 2000


def test_checkpoints_every_k_steps_rewind_exactly_to_any_step():
    """With a checkpoint every 7 steps, every rewind depth replays to the plain loop's numbers."""
    session = Session(CROP, checkpoint_every=7)
    records = [session.step() for _ in range(20)]
    for n in (1, 3, 7, 8, 13, 20):
        assert session.rewind(n) == n and session.step_count == 20 - n
        assert session.last == (records[19 - n] if n < 20 else None)
        for k in range(20 - n, 20):
            assert session.step() == records[k]


def test_a_step_that_fails_when_replayed_leaves_the_session_at_the_checkpoint(tmp_path):
    """State outside the process (a file) makes a replayed forward fail: the rewind says "not
    deterministic", leaves the session at step 0, and the next step is the first step again."""
    path = tmp_path / "flaky.py"
    path.write_text(
        "import torch\n"
        "w = torch.tensor([1.0], requires_grad=True)\n"
        "from pathlib import Path\n"
        "counter = Path(__file__).with_suffix('.calls')\n"  # outside the process: a rewind cannot take it back
        "counter.write_text('0')\n"
        "def model(x):\n"
        "    calls = int(counter.read_text()) + 1\n"
        "    counter.write_text(str(calls))\n"
        "    if calls == 6:\n"
        "        raise RuntimeError('sixth call')\n"
        "    return w * x\n"
        "loss_fn = lambda p, y: ((p - y) ** 2).mean()\n"
        "data = (torch.tensor([1.0]), torch.tensor([2.0]))\n"
        "optimizer = torch.optim.SGD([w], lr=0.1)\n"
    )
    session = Session(path, checkpoint_every=4, watch_activations=False)
    for _ in range(4):  # the load check made call 1; steps make calls 2..5
        session.step()
    with pytest.raises(StepError, match="sixth call.*not deterministic.*back at step 0"):
        session.rewind(1)  # replays steps 1..3 from the checkpoint at 0; the first forward is call 6
    assert session.step_count == 0 and session.last is None
    assert session.step().loss == pytest.approx(1.0)


def test_long_run_memory_stays_small_at_the_default_budget():
    """Checkpoints every 20 steps: 5000 steps of not_gate reach back to step 0 in under 2 MB."""
    session = Session(NOT_GATE, watch_activations=False, checkpoint_every=20)
    for _ in range(5000):
        session.step()
    assert session.rewind_depth == 5000
    assert session.rewinder.history.nbytes < 2 * 2**20


def test_snapshot_larger_than_the_budget_turns_rewind_off():
    session = Session(CROP, history_mb=10 / 2**20)
    session.step()
    assert session.rewind_depth == 0
    assert session.history_note.startswith("rewind is off: one snapshot needs")
    assert session.rewind(1) == 0 and session.step_count == 1


def test_rewind_at_step_zero_does_nothing():
    session = Session(NOT_GATE)
    assert session.rewind(1) == 0 and session.step_count == 0


def test_rewind_restores_the_record_the_screen_shows():
    session = Session(NOT_GATE)
    records = [session.step() for _ in range(4)]
    session.rewind(2)
    assert session.last == records[1]
    assert list(session.losses) == [r.loss for r in records[:2]]
    assert values(session.state()) == values(records[1])


def test_reset_picks_up_an_edit_and_a_broken_edit_keeps_the_old_session(tmp_path):
    (tmp_path / "data").symlink_to(CROP.parent.parent / "data")
    (tmp_path / "scenarios").mkdir()
    path = tmp_path / "scenarios" / "edit.py"
    source = CROP.read_text()
    path.write_text(source)
    session = Session(path)
    session.step()
    edited = source.replace("lr=1e-5", "lr=2e-5")
    assert edited != source
    path.write_text(edited)
    session.reset()
    assert session.step_count == 0 and session.lr == 2e-5
    first = session.step()
    path.write_text(source + "\ndef (\n")
    with pytest.raises(ScenarioError, match="SyntaxError"):
        session.reset()
    # the old session is still there, and its shuffling is untouched by the failed load
    assert session.lr == 2e-5 and session.step_count == 1
    second = session.step()
    path.write_text(edited)
    reference = PlainLoop(path)
    assert [values(first), values(second)] == [reference.step()["params"], reference.step()["params"]]


def test_records_are_frozen_and_hold_no_tensors():
    record = Session(NOT_GATE).step()
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.loss = 0.0
    with pytest.raises(TypeError):
        record.params["w"] = None

    def plain(obj):
        if isinstance(obj, torch.Tensor):
            return False
        if dataclasses.is_dataclass(obj):
            return all(plain(getattr(obj, f.name)) for f in dataclasses.fields(obj))
        if isinstance(obj, (list, tuple)):
            return all(plain(v) for v in obj)
        if hasattr(obj, "items"):
            return all(plain(v) for v in obj.values())
        return obj is None or isinstance(obj, (int, float, str, bool))

    assert plain(record)


def test_a_reset_that_loses_the_launch_grad_fn_keeps_the_old_session(tmp_path):
    """Issue 13: the launch values (--grad-source) are checked before a reset installs anything: a
    fit_2x.py edited to drop grad_fn fails the reset with one line naming the flag, and the old
    session steps on with grad_fn, as the plain loop does (w 1.2 then 1.68, the docstring's)."""
    path = tmp_path / "fit.py"
    source = (SCENARIOS / "fit_2x.py").read_text()
    path.write_text(source)
    session = Session(path, grad_source="grad_fn")
    first = session.step()
    path.write_text(source.replace("def grad_fn():", "def unused():"))
    with pytest.raises(ScenarioError, match="--grad-source grad_fn"):
        session.reset()
    assert session.step_count == 1 and session.grad_source == "grad_fn"
    second = session.step()
    path.write_text(source)
    plain = PlainLoop(path)
    want = [plain.step(mode="manual", grad_fn=True) for _ in range(2)]
    assert [values(first), values(second)] == [w["params"] for w in want]
    assert [first.loss, second.loss] == [w["loss"] for w in want]
    assert values(second) == [pytest.approx(1.68)]


def test_grad_source_needs_a_grad_fn():
    session = Session(NOT_GATE)
    with pytest.raises(ScenarioError, match="no grad_fn"):
        session.panel.set_grad_source("grad_fn")


def test_summary_of_a_large_tensor_matches_numpy_and_carries_no_values():
    t = torch.linspace(-3, 5, 10_001)
    t[7] = float("nan")
    view = summarize([t], max_values=100)[0]
    finite = t[~torch.isnan(t)].double().numpy()
    assert view.values is None and view.shape == (10_001,)
    assert view.nan == 1 and view.inf == 0
    assert math.isnan(view.mean)  # a NaN poisons the mean, and the count says why
    small = summarize([torch.tensor([[1.0, 2.0], [3.0, 4.0]])], max_values=100)[0]
    assert small.values == [[1.0, 2.0], [3.0, 4.0]]
    assert small.mean == 2.5 and small.min == 1.0 and small.max == 4.0
    assert small.std == pytest.approx(math.sqrt(1.25))
    assert small.norm == pytest.approx(math.sqrt(30))
    assert finite.size == 10_000


def test_stringifiers_never_raise():
    assert format_number(2.8265495) == "2.8265"
    assert format_number(-0.035532) == "-0.035532"
    assert format_number(15259.883) == "15260"
    assert format_number(1.5e-7) == "1.500e-07"
    assert format_number(float("nan")) == "nan" and format_number(float("-inf")) == "-inf"
    assert format_number("x") == "?" and format_number(None) == "?"
    assert format_values([[1.0, 2.0]]) == "[[1, 2]]"
    assert format_values(list(range(20)), limit=3) == "[0, 1, 2, … +17]"
    assert format_view(None) == "—"
    assert format_view(object()) == "?"


# --- light steps: large tensors summarised by their norms between two frames of a run -------


def test_a_light_step_keeps_exact_norms_and_detail_last_makes_it_whole():
    """crop_yields with max_values=4: weight (2, 3) is 'large'. Norms equal the plain loop's torch norms."""
    session = Session(CROP, max_values=4, checkpoint_every=3)
    records = [session.step(StepPlan(whole=False)) for _ in range(5)]
    plain = PlainLoop(CROP)  # after the session's steps: both shuffle with the global RNG
    weight = plain.tensors[0]
    for record in records:
        before = weight.detach().clone()
        out = plain.step()
        assert record.light and record.loss == out["loss"]
        view = record.params["weight"]
        assert view.norm_only and math.isnan(view.mean) and view.flat is None
        assert view.norm == torch.linalg.vector_norm(weight).double().item()
        assert record.grads["weight"].norm == torch.linalg.vector_norm(torch.tensor(out["grads"][0])).double().item()
        assert record.updates["weight"].norm == torch.dist(weight.detach(), before).double().item()
        assert record.params["bias"].values == out["params"][1]  # small tensors stay whole
    whole = Session(CROP, max_values=4)
    expected = [whole.step() for _ in range(5)][-1]
    assert not expected.light and expected.params["weight"].values is None and not math.isnan(expected.params["weight"].std)
    assert session.detail_last() == expected
    assert session.step_count == 5 and session.step() == whole.step()


def test_a_light_step_keeps_tensors_of_up_to_64_values_whole(tmp_path):
    """With the default max_values (4096), a light step gives a 100-element tensor by its norm and
    keeps a 64-element one whole; a whole step keeps both. Figures: the plain loop's."""
    path = tmp_path / "two.py"
    path.write_text(
        "import torch\n"
        "torch.manual_seed(1)\n"
        "w = torch.randn(100, requires_grad=True)\n"
        "b = torch.randn(64, requires_grad=True)\n"
        "x = torch.randn(64, 100)\n"
        "model = lambda x: x @ w + b\n"
        "loss_fn = lambda pred, y: ((pred - y) ** 2).mean()\n"
        "data = (x, torch.zeros(64))\n"
        "optimizer = torch.optim.Adam([w, b], lr=0.1)\n"
    )
    session, plain = Session(path), PlainLoop(path)
    for detail in (False, True, False):
        record, out = session.step(StepPlan(whole=detail)), plain.step()
        w = plain.tensors[0]
        assert record.light is not detail and record.params["b"].values == out["params"][1]
        if detail:
            assert record.params["w"].values == out["params"][0]
        else:
            assert record.params["w"].norm_only and record.params["w"].norm == torch.linalg.vector_norm(w).double().item()


@pytest.mark.parametrize("n", [100, 5000])
def test_norms_of_values_whose_float32_squares_overflow_stay_finite(tmp_path, n):
    """Values of 3e18 square past float32's 3.4e38: the norm, mean and std are still the plain
    loop's, accumulated in float64, on a light step (norm) and a whole one, for a tensor summarised
    on its device (n over 64, and over max_values)."""
    path = tmp_path / "huge_values.py"
    path.write_text(
        "import torch\n"
        f"w = (3e18 * torch.linspace(1, 2, {n})).requires_grad_()\n"
        "model = lambda x: x * w\n"
        "loss_fn = lambda pred, y: (pred * 1e-30).sum()\n"
        f"data = (torch.linspace(0, 1, {n}), torch.zeros({n}))\n"
        "optimizer = torch.optim.SGD([w], lr=1e14)\n"
    )
    session, plain = Session(path), PlainLoop(path)
    for detail in (False, True):
        record = session.step(StepPlan(whole=detail))
        plain.step()
        w = plain.tensors[0].detach().double()
        view = record.params["w"]
        assert record.nonfinite is None and view.finite
        assert view.norm == pytest.approx(torch.linalg.vector_norm(w).item(), rel=1e-6)
        if not view.norm_only:
            assert view.mean == pytest.approx(w.mean().item(), rel=1e-6)
            assert view.std == pytest.approx(w.std(correction=0).item(), rel=1e-5)


def test_a_light_step_with_no_reader_of_norms_still_stops_on_nan(tmp_path):
    path = tmp_path / "blows_up.py"
    path.write_text(
        "import torch\n"
        "w = torch.ones(8, requires_grad=True)\n"
        "x = torch.arange(8.0)\n"
        "model = lambda x: torch.log(x * w + 1)\n"
        "loss_fn = lambda pred, y: ((pred - y) ** 2).mean()\n"
        "data = (x, torch.full((8,), -5.0))\n"
        "optimizer = torch.optim.SGD([w], lr=1.0)\n"
    )
    light = Session(path, max_values=4, watch_activations=False)
    whole = Session(path, max_values=4, watch_activations=False)
    for step in range(1, 10):  # noqa: B007 - the step it breaks at is checked below
        a, b = light.step(StepPlan(whole=False)), whole.step()
        assert math.isnan(a.params["w"].norm) and a.params["w"].finite == b.params["w"].finite
        assert a.nonfinite == b.nonfinite
        if b.nonfinite:
            break
    assert b.nonfinite and step > 1


# --- memory kept from step to step: update buffers, recycled checkpoints ------------------------

ADAM_MLP = (
    "import torch\n"
    "torch.manual_seed(3)\n"
    "model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))\n"
    "x = torch.randn(16, 4)\n"
    "data = (x, x.sum(dim=1, keepdim=True))\n"
    "loss_fn = torch.nn.MSELoss()\n"
    "optimizer = torch.optim.Adam(model.parameters(), lr=0.01)\n"
)


def test_every_update_is_the_plain_loops_after_minus_before(tmp_path):
    """The change each step made, measured in buffers the session keeps from step to step, equals
    the plain loop's after - before: in full on a whole step, by its norm on a light one, on steps
    that start at a checkpoint too (checkpoint_every=2); and the checkpoints stay as they were."""
    path = tmp_path / "adam.py"
    path.write_text(ADAM_MLP)
    plain = PlainLoop(path)
    session = Session(path, max_values=8, checkpoint_every=2)  # the (8, 4) weight is large; hints read its norms
    records = []
    for step in range(12):
        befores = [p.detach().clone() for p in plain.tensors]
        out = plain.step()
        record = session.step(StepPlan(whole=step % 3 == 0))
        records.append(record)
        assert record.loss == out["loss"]
        for name, before, after in zip(record.updates, befores, plain.tensors):
            change = after.detach() - before
            view = record.updates[name]
            assert view.norm == pytest.approx(torch.linalg.vector_norm(change.double()).item(), rel=1e-6), name
            if view.norm_only:
                assert record.light and view.norm == torch.linalg.vector_norm(change).double().item()
            elif view.flat is None:  # a large tensor on a whole step: its statistics
                assert (view.min, view.max) == (change.min().item(), change.max().item())
                assert view.mean == pytest.approx(change.double().mean().item(), rel=1e-6)
                assert view.std == pytest.approx(change.double().std(correction=0).item(), rel=1e-6)
            else:
                assert view.values == change.tolist(), name
    assert session.rewind(12) == 12
    assert [session.step(StepPlan(whole=step % 3 == 0)) for step in range(12)] == records


def test_checkpoints_past_the_budget_are_recycled_and_rewind_still_matches_the_plain_loop(tmp_path):
    """A budget of a few checkpoints and one every 3 steps: over 60 steps most checkpoints are
    dropped, and later ones are copied into their tensors instead of new memory. No two kept
    checkpoints share memory, none shares it with the live tensors, and every step that rewind
    reaches is replayed to the plain loop's loss and parameters."""
    path = tmp_path / "adam.py"
    path.write_text(ADAM_MLP)
    plain = PlainLoop(path)
    expected = [plain.step() for _ in range(60)]
    session = Session(path, checkpoint_every=3, history_mb=0.25, watch_activations=False)
    seen: list[torch.Tensor] = []  # every checkpoint tensor so far (kept alive, so ids stay unique)
    recycled = 0
    for step in range(60):
        newest = session.rewinder.history.newest
        record = session.step()
        assert [view.values for view in record.params.values()] == expected[step]["params"]
        if session.rewinder.history.newest is not newest:  # a checkpoint was taken before this step
            tensors = list(session.rewinder.history.newest.snapshot.tensors())
            recycled += sum(any(t is old for old in seen) for t in tensors)
            seen += tensors
    assert "rewind reaches the last" in session.history_note
    assert recycled > 0
    kept = [t for c in session.rewinder.history._checkpoints for t in c.snapshot.tensors()]
    live = [*session.loop.tensors, *(v for s in session.loop.optimizer.state.values() for v in s.values())]
    pointers = [t.data_ptr() for t in kept + live if isinstance(t, torch.Tensor) and t.numel()]
    assert len(pointers) == len(set(pointers))
    depth = session.rewind_depth
    assert 10 < depth < 60
    for n in range(depth, 0, -1):
        assert session.rewind(n) == n
        for k in range(60 - n, 60):
            record = session.step()
            assert record.loss == expected[k]["loss"]
            assert [view.values for view in record.params.values()] == expected[k]["params"]


def test_the_deferred_nan_check_counts_with_the_snapshot_in_the_checkpoint_interval(monkeypatch):
    """A quiet run's NaN/Inf check before a checkpoint reads about as much as the snapshot copies:
    checkpoints come about half as often when it costs as much, so both stay near CHECKPOINT_SHARE."""
    from types import SimpleNamespace

    from gdtui.engine import history as module

    clock = iter([0.0, 0.002])  # the snapshot takes 2 ms
    monkeypatch.setattr(module, "time", SimpleNamespace(perf_counter=lambda: next(clock)))
    history = module.History(2**30)
    history.note_step(0.01)  # a 10 ms step: a 2 ms snapshot every 10 steps is 2% of the time
    history.take(0, 0, lambda previous, spares: SimpleNamespace(nbytes=0))
    assert module.CHECKPOINT_SHARE == 0.02 and history.interval() == 10
    history.note_check(0.002)
    assert history.interval() == 20
