"""Every plotext chart of the step-debugger, so the plotting library can be swapped in one place.

LossChart draws one of three views (loss per step, model against data, loss
over the parameters) from a frozen ChartFrame computed in the worker thread;
HistogramPlot draws a tensor's histogram on the detail screen. Neither does
numeric work beyond a log10 of a few hundred points.
"""

from __future__ import annotations

import math

from textual_plotext import PlotextPlot

from gdtui.engine.chart_records import ChartFrame, Histogram, LossLandscape, LossSeries, ModelFit
from gdtui.engine.formatting import format_number

VIEW_TITLES = {"loss": "loss per step", "fit": "model against data", "landscape": "loss over the parameters"}


class LossChart(PlotextPlot):
    """The chart panel; ``v`` cycles its view, ``L`` the loss axis (linear / log10)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.frame: ChartFrame | None = None
        self.log_axis = False
        self._labelled: tuple[str, bool] | None = None

    def on_mount(self) -> None:
        self._label("loss")

    def _label(self, view: str) -> None:
        """Titles and labels: set when the view (or the loss axis) changes, not on every update."""
        key = (view, self.log_axis)
        if self._labelled == key:
            return
        plt = self.plt
        plt.clear_figure()
        if view == "loss":
            plt.title("log10(loss) per step" if self.log_axis else "loss per step")
            plt.xlabel("step")
        else:
            plt.title(VIEW_TITLES.get(view, view))
        self._labelled = key

    def show(self, frame: ChartFrame) -> None:
        self.frame = frame
        self._label(frame.view)
        plt = self.plt
        plt.clear_data()
        payload = frame.payload
        if isinstance(payload, LossSeries):
            self._loss(payload)
        elif isinstance(payload, ModelFit):
            self._fit(payload)
        elif isinstance(payload, LossLandscape):
            self._landscape(payload)
        self.refresh()

    def toggle_log(self) -> None:
        self.log_axis = not self.log_axis
        if self.frame is not None:
            self.show(self.frame)

    def _loss(self, s: LossSeries) -> None:
        if not s.losses:
            return
        if self.log_axis:
            pts = [(x, math.log10(v)) for x, v in zip(s.steps, s.losses) if v > 0 and math.isfinite(v)]
        else:
            pts = [(x, v) for x, v in zip(s.steps, s.losses) if math.isfinite(v)]
        if pts:
            xs, ys = zip(*pts)
            self.plt.plot(xs, ys, marker="braille")
            if len(xs) <= 8:
                self.plt.xticks(list(xs))  # whole steps, not 1.25

    def _fit(self, f: ModelFit) -> None:
        plt = self.plt
        if f.kind == "curve":
            if f.data[0]:
                plt.scatter(f.data[0], f.data[1], marker="•", label="data")
            if f.other[0]:
                plt.plot(f.other[0], f.other[1], marker="braille", label="model")
            return
        if f.data[0]:
            plt.scatter(f.data[0], f.data[1], marker="o", label="0")
        if f.other[0]:
            plt.scatter(f.other[0], f.other[1], marker="x", label="1")
        if f.boundary[0]:
            plt.scatter(f.boundary[0], f.boundary[1], marker="braille", label=f"= {format_number(f.threshold, 2)}")

    def _landscape(self, ls: LossLandscape) -> None:
        plt = self.plt
        if len(ls.axes) == 1:
            plt.plot(ls.axes[0], ls.losses, marker="braille", label="loss")
            xs = [p[0] for p in ls.path]
            lo, hi = ls.axes[0][0], ls.axes[0][-1]
            ys = [_interp(ls.axes[0], ls.losses, x) for x in xs if lo <= x <= hi]
            if ys:
                plt.scatter([x for x in xs if lo <= x <= hi], ys, marker="●", label="steps")
            plt.xlabel(ls.names[0])
            return
        for _level, (xs, ys) in ls.contours:
            plt.scatter(xs, ys, marker="braille")
        plt.plot([p[0] for p in ls.path], [p[1] for p in ls.path], marker="●", label="path")
        plt.xlabel(ls.names[0])
        plt.ylabel(ls.names[1])


def _interp(xs, ys, x: float) -> float:
    for i in range(len(xs) - 1):
        if xs[i] <= x <= xs[i + 1]:
            t = (x - xs[i]) / (xs[i + 1] - xs[i]) if xs[i + 1] != xs[i] else 0.0
            return ys[i] + t * (ys[i + 1] - ys[i])
    return ys[-1]


class HistogramPlot(PlotextPlot):
    """A tensor's histogram, from the counts the engine computed on the tensor's device."""

    def __init__(self, title: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self._title = title

    def on_mount(self) -> None:
        self.plt.title(self._title)

    def show(self, hist: Histogram | None) -> None:
        plt = self.plt
        plt.clear_data()
        if hist is not None and hist.counts:
            centers = list(hist.centers)
            plt.bar(centers, list(hist.counts))
            ticks = [centers[0], centers[len(centers) // 2], centers[-1]]
            plt.xticks(ticks, [format_number(t, 3) for t in ticks])
        self.refresh()
