"""When a continuous run shows a step: the frame pacing shared by the app's run worker and ``gdtui bench``.

A shown step costs more than a light one (every tensor summarised in full,
then the state built and posted), so a run shows one at most every
``interval`` seconds, and, on a model whose summaries are expensive, rarely
enough that showing costs about ``share`` of the run's time.
"""

from __future__ import annotations

import time

#: A run shows at most one state per this many seconds (about 20 frames a second)...
RUN_POST_INTERVAL = 0.05
#: ...and the chart's data at most every this many seconds.
RUN_CHART_INTERVAL = 0.2
#: Showing a step may cost about this share of a run's time.
SHOW_SHARE = 0.05


class FramePacer:
    """Say which steps of a run to show (``due``), and learn what showing one cost (``shown``)."""

    def __init__(self, interval: float = RUN_POST_INTERVAL, chart_interval: float = RUN_CHART_INTERVAL):
        self.interval = interval
        self.chart_interval = chart_interval
        self.gap = interval
        self.last = self.last_chart = self.since = time.perf_counter()
        self.count = 0
        self.rate: float | None = None
        self._light_seconds = 0.0

    def due(self) -> bool:
        """Whether the next step is to be shown."""
        return time.perf_counter() - self.last >= self.gap

    def stepped(self, seconds: float, shown: bool) -> None:
        """Note a step that took ``seconds``."""
        self.count += 1
        if not shown:
            self._light_seconds = seconds if not self._light_seconds else 0.9 * self._light_seconds + 0.1 * seconds

    def chart_due(self) -> bool:
        return time.perf_counter() - self.last_chart >= self.chart_interval

    def shown(self, step_seconds: float, post_seconds: float, chart: bool) -> None:
        """A step was shown: it took ``step_seconds`` and building and posting its state ``post_seconds``."""
        now = time.perf_counter()
        self.rate = self.count / max(now - self.since, 1e-9)
        self.count, self.since, self.last = 0, now, now
        if chart:
            self.last_chart = now
        extra = max(step_seconds - self._light_seconds, 0.0) + post_seconds if self._light_seconds else post_seconds
        self.gap = max(self.interval, extra / SHOW_SHARE)
