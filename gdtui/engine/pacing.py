"""When a continuous run shows a step: the frame pacing shared by the app's run worker and ``gdtui bench``.

A shown step costs more than a light one (every tensor summarised in full,
then the state built and posted), so a run shows one at most every
``interval`` seconds, and, on a model whose summaries are expensive, rarely
enough that showing costs about SHOW_SHARE of the run's time.

The steps between two frames measure nothing for the health hints (no copy
before the update, no norms: on a 2M-parameter Adam model that was a quarter
of the step), except the HINT_LOOKBACK steps before a frame, which the shown
step's hints compare with: its hints are those of a run that measured every
step, but a "frozen" tensor's count of unchanged steps starts there. Nor are
their large tensors checked for NaN and Inf each step, but at each rewind
checkpoint (Session.step's ``defer_checks``): a step may return the record of
an earlier one, the first that went NaN/Inf, and the caller calls
``session.check_deferred()`` before the run stops.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from gdtui.engine.health import HINT_LOOKBACK

if TYPE_CHECKING:
    from gdtui.engine.records import StepRecord
    from gdtui.engine.session import Session

#: A run shows at most one state per this many seconds (10 frames a second)...
#: The screen's thread draws each frame, and while it draws the worker waits for the
#: interpreter lock: at 20 frames a second the drawing took half of it (not_gate, 80x24),
#: and a run stepped about 20% slower than at 10.
RUN_POST_INTERVAL = 0.1
#: ...and the chart's data at most every this many seconds.
RUN_CHART_INTERVAL = 0.5
#: Showing a step (the whole step and the HINT_LOOKBACK measured before it) may cost about this
#: share of a run's time.
SHOW_SHARE = 0.05


class FramePacer:
    """Run a session's steps for a continuous run: light ones between frames, a whole one to show.

    ``step`` runs one step and says whether to show it; ``show`` posts that
    step's state and learns what showing cost, which spaces the next frame.
    """

    def __init__(self, interval: float = RUN_POST_INTERVAL, chart_interval: float = RUN_CHART_INTERVAL):
        self.interval = interval
        self.chart_interval = chart_interval
        self.gap = interval
        self.last = self.last_chart = self.since = time.perf_counter()
        self.count = 0
        #: Steps per second since the previous frame, as of the latest frame.
        self.rate: float | None = None
        self._light_seconds = 0.0  # how long a step that is not shown takes, smoothed
        # The steps since the last frame that measured or were whole (what showing costs), and their time.
        self._frame_steps = 0
        self._frame_seconds = 0.0
        self._measured = 0  # how many steps in a row, up to the last, measured their hints' inputs

    def step(self, session: Session, *, left: int | None = None, detail: bool = False) -> tuple[StepRecord, bool]:
        """One step, light unless it is to be shown, is the last of the run (``left``, when the run
        has an end, counts the steps left with this one), or ``detail`` is asked for (a trace the
        user wants whole); returns its record and whether to show it. Raises StepError.

        The record is an earlier step's when a check found that step went NaN/Inf; the session
        is then just after it."""
        now = time.perf_counter()
        last = left == 1
        due = now - self.last >= self.gap
        shown = not last and due and self._measured >= HINT_LOOKBACK
        # The HINT_LOOKBACK steps before a whole one measure what its hints compare with. A frame
        # is due soon when it is due before they would be done, at the light steps' pace.
        soon = now + HINT_LOOKBACK * self._light_seconds - self.last >= self.gap
        measure = due or soon or detail or (left is not None and left <= HINT_LOOKBACK + 1)
        record = session.step(detail=shown or last or detail, defer_checks=True, hints=measure)
        self._measured = self._measured + 1 if measure else 0
        seconds = session.last_step_seconds
        self.count += 1
        if measure or shown:
            self._frame_steps += 1
            self._frame_seconds += seconds
        if not shown:  # measured steps too: one slow step must not keep ``soon`` true for good
            self._light_seconds = seconds if not self._light_seconds else 0.9 * self._light_seconds + 0.1 * seconds
        return record, shown

    def show(self, post: Callable[[bool, float | None], object]) -> None:
        """Post the shown step: ``post(chart, rate)``, where ``chart`` says the chart's data is due."""
        start = time.perf_counter()
        self.rate = self.count / max(start - self.since, 1e-9)
        chart = start - self.last_chart >= self.chart_interval
        post(chart, self.rate)
        now = time.perf_counter()
        self.count, self.since, self.last = 0, now, now
        if chart:
            self.last_chart = now
        extra = now - start  # and what the whole step and the measured ones before it cost over light ones
        if self._light_seconds:
            extra += max(self._frame_seconds - self._frame_steps * self._light_seconds, 0.0)
        self._frame_steps, self._frame_seconds = 0, 0.0
        self.gap = max(self.interval, extra / SHOW_SHARE)
