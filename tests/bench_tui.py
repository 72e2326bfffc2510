"""Measure the step-debugger in a real terminal: ``python tests/bench_tui.py [scenario | --all]``.

Not a test (timings flake under load); run it by hand on the machine you report
about. It prints, in one run:

* key press to updated screen: send Space in tmux, poll capture-pane until the
  status line shows the new step number (median and p95, at 80x24 and 200x60),
  for gdtui and for a bare Textual app with a DataTable and a PlotextPlot
  (bench_bare_app.py), measured in the same run; and to the chart's frame,
  the next time the screen changes;
* run-mode steps per second (c, wait, c) against the headless runner
  (``gdtui X --headless --steps N --quiet``, its start-up time subtracted);
* time to first frame against ``python -c "import torch"``.

``--all`` prints the key-to-numbers and key-to-chart p95 for every seed
scenario at both sizes instead.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

from tmux_driver import ROOT, TmuxApp, have_tmux

PRESSES = 40


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


BARE = str(Path(__file__).resolve().parent / "bench_bare_app.py")


#: How long the chart may take after the numbers before it counts as having come in the same frame.
CHART_WAIT = 0.3


def chart_after(app: TmuxApp, shown: str, start: float) -> float:
    """Seconds from ``start`` until the screen changes again after ``shown`` (the numbers' frame):
    the chart follows in a later frame. If nothing changes within CHART_WAIT, the chart came
    with the numbers (or did not change), and its lag is the numbers' lag."""
    numbers = time.perf_counter()
    while time.perf_counter() - numbers < CHART_WAIT:
        if app.screen() != shown:
            return time.perf_counter() - start
        time.sleep(0.0005)
    return numbers - start


def first_frame_and_latency(scenario: str, width: int, height: int, program: str | None = None,
                            presses: int = PRESSES) -> tuple[float, float, list[float], list[float]]:
    """Seconds to the first frame (gdtui: ``opening …``), to the first numbers (step 0), the key
    lags to the numbers, and to the chart."""
    args = () if program else (scenario,)
    with TmuxApp(*args, width=width, height=height, program=program) as app:
        t0 = app.start()
        app.wait_for(r"opening |step 0 [│|]", poll=0.001)
        first = time.perf_counter() - t0
        app.wait_for(r"step 0 [│|]", poll=0.001)
        numbers = time.perf_counter() - t0
        time.sleep(1.0)  # let the first chart draw settle
        lags, charts = [], []
        for n in range(1, presses + 1):
            start = time.perf_counter()
            app.send("Space")
            shown = app.wait_for(rf"step {n}( epoch \d+ batch \d+)? [│|]", poll=0.0005)
            lags.append(time.perf_counter() - start)
            charts.append(chart_after(app, shown, start))
            time.sleep(0.1)  # measure each key from a quiet screen
        app.send("q")
        return first, numbers, lags, charts


def run_mode_rate(scenario: str, seconds: float = 3.0) -> float:
    with TmuxApp(scenario) as app:
        app.start()
        app.wait_for(r"step 0 ")
        time.sleep(0.5)
        app.send("c")
        start = time.perf_counter()
        time.sleep(seconds)
        app.send("c")
        elapsed = time.perf_counter() - start
        screen = app.wait_for(r"step \d+ │ next", timeout=10)
        time.sleep(0.3)
        screen = app.screen()
        steps = int(screen.split("step ", 1)[1].split()[0])
        app.send("q")
        return steps / elapsed


def timed_headless(scenario: str, n: int) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "gdtui", scenario, "--headless", "--steps", str(n), "--quiet"],
                   cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - t0


def headless_rate(scenario: str, steps: int = 3000) -> float:
    def timed(n: int) -> float:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "gdtui", scenario, "--headless", "--steps", str(n), "--quiet"],
                       cwd=ROOT, check=True, capture_output=True)
        return time.perf_counter() - t0

    return steps / (timed(steps) - timed(0))


def python_time(code: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - t0


def every_seed_scenario(presses: int = 20) -> None:
    """Key to numbers and to chart, p95, for every seed scenario at both sizes: one line each."""
    seeds = sorted(p for p in (ROOT / "scenarios").glob("*.py") if "bench" not in p.stem)
    print(f"{presses} presses each; p95 (median) in ms")
    for path in seeds:
        cells = []
        for width, height in ((80, 24), (200, 60)):
            _, _, lags, charts = first_frame_and_latency(f"scenarios/{path.name}", width, height, presses=presses)
            ms, chart_ms = [x * 1000 for x in lags], [x * 1000 for x in charts]
            cells.append(f"{width}x{height} numbers {percentile(ms, 0.95):5.1f} ({statistics.median(ms):4.1f}) "
                         f"chart {percentile(chart_ms, 0.95):5.1f} ({statistics.median(chart_ms):4.1f})")
        print(f"{path.name:28} " + " | ".join(cells), flush=True)


def main() -> None:
    if not have_tmux():
        sys.exit("tmux is not installed (apt-get install -y tmux)")
    if sys.argv[1:2] == ["--all"]:
        every_seed_scenario()
        return
    scenario = sys.argv[1] if len(sys.argv) > 1 else "scenarios/not_gate.py"
    print(f"scenario {scenario}, {PRESSES} presses per size")
    for width, height in ((80, 24), (200, 60)):
        for name, program in (("gdtui", None), ("bare Textual app", BARE)):
            first, numbers, lags, charts = first_frame_and_latency(scenario, width, height, program)
            ms, chart_ms = [x * 1000 for x in lags], [x * 1000 for x in charts]
            print(f"{width}x{height} {name}: key to screen median {statistics.median(ms):.1f} ms, "
                  f"p95 {percentile(ms, 0.95):.1f} ms; chart p95 {percentile(chart_ms, 0.95):.1f} ms; "
                  f"first frame {first:.2f} s, numbers {numbers:.2f} s")
    torch_s = python_time("import torch")
    optimizer_s = python_time("import torch; torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)")
    print(f'python -c "import torch": {torch_s:.2f} s; with an optimizer built: {optimizer_s:.2f} s; '
          f"headless run of 0 steps (torch, scenario, optimizer): {timed_headless(scenario, 0):.2f} s")
    print(f"run mode (c): {run_mode_rate(scenario):,.0f} steps/s; headless: {headless_rate(scenario):,.0f} steps/s")


if __name__ == "__main__":
    main()
