"""gdtui.engine.charts: the numbers behind the step-debugger's charts, with no terminal.

Each test names what it compares with: a closed form, numpy, or the session's
own tensors before and after (the charts must leave them bit for bit alone).
"""

from __future__ import annotations

import random

import numpy as np
import torch

from gdtui.engine import charts
from gdtui.engine.session import Session
from tests.paths import SCENARIOS


def test_downsample_keeps_first_and_last_and_fits_the_width():
    idx, vals = charts.downsample(list(range(1000)), 50)
    assert len(idx) <= 50 and idx[0] == 0 and idx[-1] == 999
    assert vals == tuple(idx)
    assert charts.downsample([3.0, 2.0], 50) == ((0, 1), (3.0, 2.0))
    series = charts.loss_series([5.0, 4.0, 3.0], 80)
    assert series.steps == (1, 2, 3) and series.losses == (5.0, 4.0, 3.0) and series.total == 3


def test_histogram_counts_equal_numpys():
    torch.manual_seed(0)
    t = torch.randn(64, 64)
    t[0, 0] = float("nan")
    h = charts.histogram(t, bins=20)
    finite = t[torch.isfinite(t)].numpy()
    expected, _ = np.histogram(finite, bins=20, range=(finite.min(), finite.max()))
    # histc and numpy may put a value sitting exactly on an inner edge in different bins
    assert sum(h.counts) == finite.size and h.nonfinite == 1
    assert sum(abs(a - b) for a, b in zip(h.counts, expected)) <= 4
    assert h.lo == float(finite.min()) and h.hi == float(finite.max())


def test_histogram_counts_past_float32s_exact_integers():
    # float32 holds every integer only up to 2**24; a 1e8-element tensor has bins far fuller
    t = torch.zeros(2**24 + 20)
    t[:3] = 1.0
    h = charts.histogram(t, bins=10)
    assert h.counts == (2**24 + 17,) + (0,) * 8 + (3,)  # a float32 count stops at 2**24
    assert charts.histogram(torch.full((5,), 2.0), bins=5).counts == (0, 0, 5, 0, 0)


def test_histogram_of_values_at_float32s_limits():
    huge = torch.tensor([-3e38, 0.0, 3e38])  # hi - lo overflows float32
    assert charts.histogram(huge, bins=3).counts == (1, 1, 1)
    tiny = torch.tensor([0.0, 1e-45, 2e-45, 3e-45])  # subnormals: hi - lo is below float32's tiny
    assert sum(charts.histogram(tiny, bins=3).counts) == 4 and charts.histogram(tiny, bins=3).counts[0] == 1


def test_quadratic_landscape_is_the_parabola_and_leaves_the_session_alone():
    # quadratic.py: y = x^2 + 2x + 1 = (x + 1)^2; the notebook's x after 3 steps is 3.8, 2.84, 2.072.
    s = Session(SCENARIOS / "quadratic.py")
    for _ in range(3):
        s.step()
    x = s.loop.tensors[0]
    before = x.detach().clone()
    torch_rng, py_rng, np_rng = torch.get_rng_state(), random.getstate(), np.random.get_state()[1].copy()
    ls = charts.loss_landscape(s.scenario, s.loop.names, s.loop.tensors, s.scalar_path)
    assert ls.names == ("x",) and len(ls.axes) == 1
    for v, loss in zip(ls.axes[0], ls.losses):
        assert abs(loss - (v + 1) ** 2) < 1e-3 * max(1.0, (v + 1) ** 2)
    assert [round(p[0], 4) for p in ls.path] == [5.0, 3.8, 2.84, 2.072]
    assert torch.equal(x.detach(), before) and x.grad is not None and float(x.grad) == 0.0
    assert torch.equal(torch.get_rng_state(), torch_rng) and random.getstate() == py_rng
    assert (np.random.get_state()[1] == np_rng).all()
    assert s.step().loss == s.losses[-1]  # the session steps on as if nothing happened
    again = charts.loss_landscape(s.scenario, s.loop.names, s.loop.tensors, s.scalar_path, previous=ls)
    assert again.axes == ls.axes and len(again.path) == 5  # the grid is reused while the path stays inside


def test_two_parameter_landscape_draws_contours_around_the_path():
    s = Session(SCENARIOS / "not_gate.py")
    s.step()
    ls = charts.loss_landscape(s.scenario, s.loop.names, s.loop.tensors, s.scalar_path)
    assert ls.names == ("w", "b") and len(ls.axes) == 2 and ls.contours
    assert ls.covers(ls.path)


def test_model_curve_is_the_models_line():
    # linear_regression.py: the model is w * x + b; the curve must be that line at the current w, b.
    s = Session(SCENARIOS / "linear_regression.py")
    s.step()
    fit = charts.model_fit(s.scenario, s.loop.tensors)
    w, b = (float(t.detach()) for t in s.loop.tensors)
    assert fit.kind == "curve"
    for gx, gy in zip(*fit.other):
        assert abs(gy - (w * gx + b)) < 1e-4
    assert len(fit.data[0]) == 15


def test_decision_boundary_lies_where_the_probability_is_one_half():
    s = Session(SCENARIOS / "logistic_regression.py")
    s.step()
    fit = charts.model_fit(s.scenario, s.loop.tensors)
    assert fit.kind == "boundary" and fit.threshold == 0.5 and fit.boundary[0]
    w, b = s.loop.tensors
    points = torch.tensor(list(zip(*fit.boundary)), dtype=torch.float32)
    with torch.no_grad():
        p = torch.sigmoid(points @ w + b)
    assert torch.allclose(p, torch.full_like(p, 0.5), atol=0.02)
    assert len(fit.data[0]) + len(fit.other[0]) == 100


def test_views_that_do_not_apply_are_none():
    s = Session(SCENARIOS / "crop_yields.py")  # three features from a DataLoader
    assert charts.fit_kind(s.scenario) is None
    assert not charts.landscape_applies(s.scenario, s.loop.tensors)
    q = Session(SCENARIOS / "quadratic.py")  # an objective: no data to plot
    assert charts.model_fit(q.scenario, q.loop.tensors) is None
