"""gdtui equals a plain PyTorch loop under random scenarios and random key presses, exactly.

Reference: PlainMirror in property_support.py, the training loop written out by
hand over a scenario file run with runpy, no gdtui code involved. Hypothesis
draws a small network (1–3 Linear layers, tanh/ReLU/sigmoid between them), an
MSE or cross-entropy loss, one of five optimizers with a drawn lr, full-batch
or shuffled DataLoader data, and 5–25 user actions: step, single phases, mode
switch, set/scale lr, rewind and reset. Every record, every state after an
action or a phase, and every rewind count must be equal, floats with ``==``.

Profiles (tests/hypothesis_profiles.py): ``default`` is derandomized and fast;
``long`` draws many more examples:
``python -m pytest -p tests.hypothesis_profiles --hypothesis-profile long tests/test_property.py``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import example, given, note

from gdtui.engine import Session
from tests import hypothesis_profiles  # noqa: F401  - registers the profiles
from tests.engine.property_support import (
    Launch,
    PlainMirror,
    Scenario,
    actions,
    first_difference,
    launches,
    observe_gdtui,
    scenarios,
)

TANH_ADAM_LOADER = Scenario(
    seed=3, widths=(2, 3, 2), activations=("tanh",), loss="cross_entropy", optimizer="adam",
    lr=0.05, rows=7, batch_size=3, metric=True,
)
RELU_MOMENTUM_FULL = Scenario(
    seed=11, widths=(3, 4, 4, 1), activations=("relu", "sigmoid"), loss="mse", optimizer="momentum",
    lr=0.1, rows=5, batch_size=None, manual_lr=0.3,
)


def check(scenario: Scenario, launch: Launch, acts: list[tuple]) -> None:
    with tempfile.TemporaryDirectory(prefix="gdtui-property-") as folder:
        path = scenario.write(Path(folder))
        note(scenario.source())
        got = observe_gdtui(path, launch, acts)
        expected = PlainMirror(path, scenario, launch).observe(acts)
    difference = first_difference(got, expected, acts)
    assert difference is None, difference


# A step taken phase by phase, then mode, lr, rewind mid-step and reset; a
# DataLoader that wraps into its third epoch.
@example(
    scenario=TANH_ADAM_LOADER,
    launch=Launch(mode="manual"),
    acts=[("phases", 5), ("step",), ("mode", "optim"), ("phases", 3), ("rewind", 2), ("step",), ("step",),
          ("scale_lr", 2.0), ("step",), ("step",), ("step",), ("step",), ("reset",), ("step",)],
)
# A scenario `lr` for manual mode, launch lr, set_lr after launch then reset.
@example(
    scenario=RELU_MOMENTUM_FULL,
    launch=Launch(lr=0.05),
    acts=[("step",), ("mode", "manual"), ("step",), ("set_lr", 0.2), ("phases", 4), ("step",), ("rewind", 4),
          ("step",), ("reset",), ("phases", 2), ("mode", "manual"), ("step",)],
)
@given(scenario=scenarios(), launch=launches, acts=actions)
def test_records_equal_plain_loop_under_random_actions(scenario, launch, acts):
    check(scenario, launch, acts)


def test_a_whole_step_and_its_five_phases_give_the_same_record():
    """Four steps by space equal four steps by five phase keys each, records and all.

    The sessions run one after the other: a shuffled DataLoader draws from the
    global torch RNG, so two sessions stepped in turn would shuffle differently.
    """
    with tempfile.TemporaryDirectory(prefix="gdtui-property-") as folder:
        path = TANH_ADAM_LOADER.write(Path(folder))
        whole = Session(path)
        by_step = [whole.step() for _ in range(4)]
        phased = Session(path)
        by_phase = []
        for _ in range(4):
            records = [phased.step_phase() for _ in range(5)]
            assert records[:4] == [None] * 4
            by_phase.append(records[4])
        assert by_phase == by_step


@pytest.mark.parametrize("change", [("set_lr", 0.5), ("scale_lr", 2.0)], ids=["set_lr", "scale_lr"])
def test_record_lr_is_the_lr_the_update_used(change):
    """One weight, SGD lr 0.1: four phases (the update uses 0.1), a new lr, then zero_grad.

    Reference: the plain loop's update ``w -= 0.1 * w.grad``; the record's params
    equal it (the property above checks that), so its lr must say 0.1.
    """
    scenario = Scenario(seed=0, widths=(1, 1), activations=(), loss="mse", optimizer="sgd", lr=0.1, rows=4, batch_size=None)
    with tempfile.TemporaryDirectory(prefix="gdtui-property-") as folder:
        session = Session(scenario.write(Path(folder)))
        for _ in range(4):
            assert session.step_phase() is None
        getattr(session.panel, change[0])(change[1])
        record = session.step_phase()
    assert record.lr == 0.1
