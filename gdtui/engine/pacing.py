"""When a continuous run shows a step: the frame pacing shared by the app's run worker and ``gdtui bench``.

A shown step costs more than a light one (every tensor summarised in full,
then the state built and posted), so a run shows one at most every
``interval`` seconds, and, on a model whose summaries are expensive, rarely
enough that showing costs about ``share`` of the run's time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

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
#: Showing a step may cost about this share of a run's time.
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
        self._light_seconds = 0.0
        self._shown_seconds = 0.0

    def step(self, session: Session, *, last: bool = False, detail: bool = False) -> tuple[StepRecord, bool]:
        """One step, light unless it is to be shown, is the ``last`` of the run, or ``detail`` is asked
        for (a trace the user wants whole); returns its record and whether to show it. Raises StepError."""
        shown = not last and time.perf_counter() - self.last >= self.gap
        record = session.step(detail=shown or last or detail)
        seconds = session.last_step_seconds
        self.count += 1
        if shown:
            self._shown_seconds = seconds
        else:
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
        extra = now - start
        if self._light_seconds:
            extra += max(self._shown_seconds - self._light_seconds, 0.0)
        self.gap = max(self.interval, extra / SHOW_SHARE)
