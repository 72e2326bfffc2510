"""When a continuous run shows a step: the schedule of the app's run worker and of ``gdtui bench``'s run mode.

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
checkpoint (Session.step's ``defer_checks``): gdtui.engine.runner.Run makes
the checks left before it stops, and stops at the first step that went NaN/Inf.
"""

from __future__ import annotations

import time

from gdtui.engine.health import HINT_LOOKBACK
from gdtui.engine.runner import StepPlan

#: A run shows at most one state per this many seconds (10 frames a second)...
#: The screen's thread draws each frame, and while it draws the worker waits for the
#: interpreter lock: more frames a second leave a run less time to step (gdtui bench
#: measures what drawing costs).
RUN_POST_INTERVAL = 0.1
#: ...and the chart's data at most every this many seconds.
RUN_CHART_INTERVAL = 0.5
#: Showing a step (the whole step and the HINT_LOOKBACK measured before it) may cost about this
#: share of a run's time.
SHOW_SHARE = 0.05


class FramePacer:
    """The schedule of a continuous run on the screen (see gdtui.engine.runner): light steps
    between frames, a whole one to show.

    ``plan`` says what the next step measures and whether it is shown; ``frame``
    and ``framed`` bracket the consumer's showing it, and learn what showing
    cost, which spaces the next frame. ``detail``: every step whole (a trace the
    user wants whole).
    """

    #: A paused run's last step is made whole: the screen shows it.
    whole_at_stop = True

    def __init__(self, interval: float = RUN_POST_INTERVAL, chart_interval: float = RUN_CHART_INTERVAL,
                 detail: bool = False):
        self.interval = interval
        self.chart_interval = chart_interval
        self.detail = detail
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
        self._start = 0.0  # when the frame being shown began
        self._chart = False  # whether it carries the chart's data

    def plan(self, left: int | None) -> StepPlan:
        """The next step: light unless it is to be shown, is the last of the run (``left``, when the
        run has an end, counts the steps left with this one), or ``detail`` is asked for."""
        now = time.perf_counter()
        last = left == 1
        due = now - self.last >= self.gap
        shown = not last and due and self._measured >= HINT_LOOKBACK
        # The HINT_LOOKBACK steps before a whole one measure what its hints compare with. A frame
        # is due soon when it is due before they would be done, at the light steps' pace.
        soon = now + HINT_LOOKBACK * self._light_seconds - self.last >= self.gap
        measure = due or soon or self.detail or (left is not None and left <= HINT_LOOKBACK + 1)
        return StepPlan(whole=shown or last or self.detail, hints=measure, defer=True, show=shown)

    def stepped(self, plan: StepPlan, seconds: float) -> None:
        measure = plan.hints
        self._measured = self._measured + 1 if measure else 0
        self.count += 1
        if measure or plan.show:
            self._frame_steps += 1
            self._frame_seconds += seconds
        if not plan.show:  # measured steps too: one slow step must not keep ``soon`` true for good
            self._light_seconds = seconds if not self._light_seconds else 0.9 * self._light_seconds + 0.1 * seconds

    def frame(self) -> tuple[float | None, bool]:
        """A shown step's frame begins: the steps per second since the last, and whether the chart's data is due."""
        start = self._start = time.perf_counter()
        self.rate = self.count / max(start - self.since, 1e-9)
        self._chart = start - self.last_chart >= self.chart_interval
        return self.rate, self._chart

    def framed(self) -> None:
        """The frame was shown: what it cost (and what the whole step and the measured ones before
        it cost over light ones) spaces the next."""
        now = time.perf_counter()
        self.count, self.since, self.last = 0, now, now
        if self._chart:
            self.last_chart = now
        extra = now - self._start
        if self._light_seconds:
            extra += max(self._frame_seconds - self._frame_steps * self._light_seconds, 0.0)
        self._frame_steps, self._frame_seconds = 0, 0.0
        self.gap = max(self.interval, extra / SHOW_SHARE)
