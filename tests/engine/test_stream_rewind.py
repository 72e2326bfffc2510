"""Rewind on a long stream of batches takes the batches from memory, not from the data again.

Reference: the plain PyTorch loop (tests/plain_loop.py's PlainLoop) over the same file, which never rewinds.
"""

from __future__ import annotations

from gdtui.engine import Session
from gdtui.engine.runner import StepPlan
from tests.paths import STREAM
from tests.plain_loop import PlainLoop

COUNTED = STREAM / "counted_generator.py"


def made(session: Session) -> int:
    return session.scenario.namespace["data"].made


def test_rewind_and_pause_do_not_read_the_generator_again():
    """Issue 12 case 8: after 600 steps of a generator, rewinding 300 steps, pausing (detail_last) and
    stepping back to 600 make no batch twice, and every loss equals the plain loop's bit for bit, the
    fetches' own torch and numpy draws included (the model has dropout)."""
    plain = PlainLoop(COUNTED)
    expected = [plain.step()["loss"] for _ in range(700)]
    session = Session(COUNTED)
    for _ in range(600):
        session.step(StepPlan(whole=False, defer=True))
    assert made(session) == 600
    assert session.rewind(300) == 300
    session.detail_last()
    losses = [session.step().loss for _ in range(300)]
    assert made(session) == 600  # every batch again came from memory
    assert losses == expected[300:600]
    more = [session.step().loss for _ in range(100)]  # on past the end: the data's own iterator again
    assert made(session) == 700
    assert more == expected[600:700]
    assert session.history_note is None


def test_over_budget_the_batches_are_read_again_and_it_says_why():
    """Issue 12 case 8: when the batches since the checkpoint do not fit in --history-mb, a rewind reads
    the data again, exactly as before, and the history note says so."""
    plain = PlainLoop(COUNTED)
    expected = [plain.step()["loss"] for _ in range(200)]
    session = Session(COUNTED, history_mb=0.05, checkpoint_every=64)
    for _ in range(150):
        session.step()
    assert session.rewind(20) == 20
    losses = [session.step().loss for _ in range(20)]
    assert made(session) > 150
    assert losses == expected[130:150]
    assert "read" in session.history_note and "--history-mb" in session.history_note
