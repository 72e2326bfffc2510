"""`gdtui bench`: it runs the three ways and reports them; errors are one line. No timing is asserted (timings flake).

The step-debugger's half (it needs textual); the headless half is tests/engine/test_bench.py.
"""

from __future__ import annotations


def test_bench_draws_the_chart_as_wide_as_the_run_worker():
    """Issue 13: the bench and the run worker take the chart's width from one engine constant."""
    from gdtui import jobs
    from gdtui.engine import charts

    assert jobs.SessionJobs(None, None, print).charts.width == charts.CHART_WIDTH

