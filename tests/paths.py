"""Where things are: the repository, its seed scenarios, and the test scenarios both halves use.

The scenario folders stay here, at tests/, because the engine tests (tests/engine) and the
screen's tests (tests/app) both run them. A plain helper module: tests import it as ``tests.paths``.
"""

from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
SCENARIOS = ROOT / "scenarios"
BAD = TESTS / "bad_scenarios"
DIAG = TESTS / "diag_scenarios"
STATE = TESTS / "state_scenarios"
STREAM = TESTS / "stream_scenarios"
OWN = TESTS / "tui_scenarios"


def seed_scenarios() -> list[Path]:
    """The runnable seed scenarios (benchmarks excluded)."""
    return sorted(p for p in SCENARIOS.glob("*.py") if "bench" not in p.stem)
