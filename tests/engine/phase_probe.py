"""Step a session phase by phase with a probe before each phase, and check the probe left the
global random state alone (torch, numpy, random and the scenario's module).

The gradient check, the comparison and the optimizer-state tests all probe this way. A plain
helper module: tests import it as ``tests.engine.phase_probe``.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import numpy as np
import torch

from gdtui.engine import Session
from gdtui.engine.scenario import MODULE_NAME


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
