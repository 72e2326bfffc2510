"""``gdtui bench SCENARIO``: what gdtui costs, against a plain PyTorch loop over the same scenario.

Four ways to train the same scenario, timed in alternation (a, b, c, d, a, b,
c, d, ... one round each), each from a fresh load; the first three in this
process. The table gives each way's median steps/s, and its ratio to the plain
loop as the median of the rounds' ratios, which a machine whose speed drifts
between rounds disturbs less (and (d) against (b) the same way):

* **plain**: the training loop a user would write, over the scenario's own
  objects: ``pred = model(x); loss = loss_fn(pred, y); loss.backward();
  optimizer.step(); optimizer.zero_grad()`` (or ``loss()`` for an objective).
* **headless**: :func:`gdtui.engine.headless.run_headless` stepping a
  :class:`Session`, as ``gdtui SCENARIO --headless --quiet`` does.
* **run**: the step-debugger's run mode without a screen, as the app's run
  worker (gdtui.jobs) drives it: the same :class:`gdtui.engine.runner.Run`, with
  activations watched and every step written to a trace; the steps between two frames are
  light (large tensors only checked for NaN and Inf, no hints, except the few
  before a frame, which measure the norms its hints compare with), and a shown step is
  summarised in full and its state (every 500 ms with the loss chart's data)
  handed to a post that does nothing. Frames are paced by
  :class:`gdtui.engine.pacing.FramePacer`: at most every 100 ms, and rarely
  enough that showing takes a small, fixed share of the time (the pacer's target).
* **trainer**: run mode as the step-debugger runs it, through a trainer process
  (``python -m gdtui.trainer``, started untimed for each round): a ``run``
  command of n steps, and every event the client decodes (the paced frames,
  the output, the final frame) taken as the screen's port takes them, without
  Textual, until the trainer's ``done``. Its memory and syncs are the trainer
  process's, which this one does not read.

Every way runs in optim mode (``optimizer.step()``), so all four do the same
arithmetic, and each starts from the same memory state. By default glibc's
allocator adapts to what the process freed before (it raises its mmap
threshold as large blocks are freed), so a way's speed depended on the ways
timed before it: in a fresh process mlp_bench's plain loop page-faulted on
every step, and after the engine's rounds it did not. The
bench fixes those thresholds for all four ways (freed memory stays with the
allocator), hands the free memory back to the system before each way starts,
so no way copies its checkpoints into memory another left behind, and runs a
first round untimed. This module never imports textual.
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import os
import statistics
import sys
import textwrap
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

from gdtui.bench_memory import MMAP_THRESHOLD, TRIM_THRESHOLD, Clock, release_free_memory, steady_allocator

WAYS = ("plain", "headless", "run", "trainer")
LABELS = {
    "plain": "(a) plain PyTorch loop",
    "headless": "(b) gdtui --headless",
    "run": "(c) run mode (TUI worker)",
    "trainer": "(d) run mode, trainer",
}
#: The ways timed in another process: this process's memory and syncs say nothing of them.
OTHER_PROCESS = ("trainer",)
#: Without --steps: as many steps as take the plain loop about this long, within the bounds below.
TARGET_SECONDS = 0.5
MIN_STEPS, MAX_STEPS = 3, 2000
DEFAULT_REPEATS = 5

Run = Callable[[int], None]


class BenchError(Exception):
    """A benchmark that cannot go on, told in one line; ``status`` is the exit status."""

    def __init__(self, message: str, status: int = 2):
        super().__init__(message)
        self.status = status


# --- the four ways --------------------------------------------------------------------------


def prepare_plain(path: Path, device: str, **_options) -> Run:
    """Load the scenario and return ``run(n)``: n steps of the loop a user would write."""
    import torch

    from gdtui.engine.errors import error_from
    from gdtui.engine.scenario import load_scenario

    sc = load_scenario(path, device=device)
    model, loss_fn, objective, optimizer = sc.model, sc.loss_fn, sc.objective, sc.optimizer
    dev = sc.device

    def epochs():
        while True:
            for x, y in sc.batches:
                yield x.to(dev), y.to(dev)

    stream = epochs() if sc.batches is not None else None
    x, y = sc.full_batch or (None, None)

    def run(n: int) -> None:
        nonlocal x, y
        try:
            with torch.device(dev):
                for _ in range(n):
                    if objective is not None:
                        loss = objective()
                    else:
                        if stream is not None:
                            x, y = next(stream)
                        pred = model(x)
                        loss = loss_fn(pred, y)
                    loss.backward()
                    optimizer.step()
                    optimizer.zero_grad()
        except Exception as exc:  # noqa: BLE001 - the scenario's code raised; one line
            raise BenchError(str(error_from(exc, sc.path, "the plain loop"))) from None

    return run


def _session(path: Path, device: str, history_mb: float, watch_activations: bool):
    from gdtui.engine import Session

    return Session(path, device=device, history_mb=history_mb, mode="optim", watch_activations=watch_activations)


def prepare_headless(path: Path, device: str, history_mb: float) -> Run:
    """``run(n)``: the headless runner, quiet, on a fresh session (no activation watch, as without --hints)."""
    from gdtui.engine.headless import run_headless

    session = _session(path, device, history_mb, watch_activations=False)

    def run(n: int) -> None:
        err = io.StringIO()
        status = run_headless(session, n, quiet=True, out=io.StringIO(), err=err)
        if status != 0:
            raise BenchError(err.getvalue().strip(), 3 if status == 3 else 2)

    return run


def prepare_run_mode(path: Path, device: str, history_mb: float) -> Run:
    """``run(n)``: the run worker of the step-debugger, posting to nowhere (activations watched, as in
    the app, and every step written to a temporary trace, as the app's export log is): the same
    gdtui.engine.runner.Run, schedule and stop conditions as SessionJobs.run (the in-process port)."""
    import atexit

    from gdtui.engine.charts import CHART_WIDTH, loss_series
    from gdtui.engine.pacing import FramePacer
    from gdtui.engine.runner import Frame
    from gdtui.engine.runner import Run as Runner
    from gdtui.engine.trace import TraceWriter

    session = _session(path, device, history_mb, watch_activations=True)
    trace = TraceWriter.export_log(session.max_values, prefix="gdtui-bench-")
    atexit.register(lambda: (trace.close(), trace.path.unlink(missing_ok=True)))

    def post(*_message: object) -> None:
        """The app's post_message; here the state goes nowhere."""

    def run(n: int) -> None:
        runner = Runner(session, n, schedule=FramePacer(), trace=trace)
        rate = None
        for event in runner:
            if type(event) is Frame:
                rate = event.steps_per_s
                post(event.state, loss_series(session.losses, CHART_WIDTH) if event.chart else None, rate)
        stopped = runner.stopped
        if stopped.error:
            raise BenchError(stopped.error)
        if stopped.reason == "nonfinite":
            bad = stopped.record
            raise BenchError(f"{session.path}: step {bad.step}: {bad.nonfinite} became NaN/Inf; lower the learning rate", 3)
        post(session.state(), loss_series(session.losses, CHART_WIDTH), rate)

    return run


class TrainerRun:
    """``run(n)``: run mode through a trainer process (``python -m gdtui.trainer``), consumed as the
    screen's port consumes it, without Textual: a Run command of n steps, then every event the
    client's reader decoded (the paced frames, the output, Stopped, the final frame) taken from its
    queue until the trainer's done. The trainer's process starts here, untimed, with the bench's
    allocator settings; :meth:`close` ends it."""

    def __init__(self, path: Path, device: str, history_mb: float):
        from gdtui import protocol as p
        from gdtui.client import TrainerClient, TrainerError

        self._p = p
        env = dict(os.environ, MALLOC_MMAP_THRESHOLD_=str(MMAP_THRESHOLD), MALLOC_TRIM_THRESHOLD_=str(TRIM_THRESHOLD))
        root = str(Path(__file__).resolve().parent.parent)  # the trainer runs this gdtui, wherever it is installed
        env["PYTHONPATH"] = os.pathsep.join(x for x in (root, env.get("PYTHONPATH")) if x)
        # A bench killed before it could quit the trainer leaves it for a minute, not half an hour.
        flags = ["--device", device, "--history-mb", repr(float(history_mb)), "--mode", "optim", "--detach-timeout", "1"]
        try:
            self.client = TrainerClient.start(str(path), flags=flags, env=env, name="gdtui bench")
        except TrainerError as exc:
            raise BenchError(f"{path}: the trainer did not start: {exc}") from None
        try:
            self._until(p.Opened, ())  # the load sends no done
        except BaseException:
            self.close()
            raise

    def __call__(self, n: int) -> None:
        p = self._p
        self.client.send(p.Run(limit=n))
        stopped = self._until(p.Done, (p.Stopped,))
        if stopped is not None and stopped.reason == "nonfinite":
            bad = stopped.record
            raise BenchError(f"{self.client.hello.scenario}: step {bad.step}: {bad.nonfinite} became NaN/Inf; "
                             "lower the learning rate", 3)

    def _until(self, kind: type, wanted: tuple[type, ...]):
        """Events up to one of ``kind``; the last of ``wanted`` seen is returned. A failed load, an
        error, or the trainer's end is a BenchError."""
        from gdtui.client import Ended

        p, found = self._p, None
        while True:
            event = self.client.next_event()
            if isinstance(event, kind):
                return found
            if isinstance(event, wanted):
                found = event
            elif isinstance(event, (p.LoadFailed, p.Error)):
                raise BenchError(event.error if isinstance(event, p.LoadFailed) else event.message)
            elif isinstance(event, Ended):
                raise BenchError(f"{self.client.hello.scenario}: the trainer ended ({event.detail or event.how})")

    def close(self) -> None:
        self.client.quit()


def prepare_trainer(path: Path, device: str, history_mb: float) -> Run:
    """``run(n)``: the step-debugger's run mode through a trainer process (see :class:`TrainerRun`)."""
    return TrainerRun(path, device, history_mb)


PREPARE = {"plain": prepare_plain, "headless": prepare_headless, "run": prepare_run_mode, "trainer": prepare_trainer}


def _close(run: Run) -> None:
    close = getattr(run, "close", None)
    if close is not None:
        close()


# --- measuring ------------------------------------------------------------------------------


def measure(run: Run, steps: int, warmup: int, clock: Clock) -> tuple[float, float | None]:
    """Steps per second over ``steps`` steps after ``warmup``, and the peak memory growth in MB."""
    release_free_memory()
    clock.start_memory()
    run(warmup)
    start = clock.now()
    run(steps)
    elapsed = clock.now() - start
    return steps / elapsed, clock.peak_growth_mb()


def count_syncs(run: Run, steps: int, warmup: int, clock: Clock) -> float:
    """Host-device synchronisations per step on CUDA, counted by torch's sync debug mode; not timed."""
    torch = clock.torch
    run(warmup)
    clock.sync()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            run(steps)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught) / steps


def choose_steps(path: Path, device: str, clock: Clock) -> int:
    """Enough steps for the plain loop to run about TARGET_SECONDS."""
    run = prepare_plain(path, device)
    run(1)
    n = 1
    while True:
        start = clock.now()
        run(n)
        elapsed = clock.now() - start
        if elapsed >= 0.05 or n >= MAX_STEPS:
            break
        n *= 4
    return max(MIN_STEPS, min(MAX_STEPS, round(TARGET_SECONDS * n / max(elapsed, 1e-9))))


def bench(path: Path, device: str, steps: int | None, repeats: int, history_mb: float) -> dict:
    """Check the scenario loads, time the four ways in alternation, and return the table as a dict."""
    import torch

    from gdtui import __version__

    # Any ScenarioError comes now, before timing; "cuda" is resolved to "cuda:0".
    resolved = str(_session(path, device, history_mb, watch_activations=False).scenario.device)
    clock = Clock(device)
    steady_allocator()
    steps = steps or choose_steps(path, device, clock)
    warmup = max(1, min(5, steps // 10))
    options = dict(device=device, history_mb=history_mb)
    rates: dict[str, list[float]] = {name: [] for name in WAYS}
    memory: dict[str, list[float | None]] = {name: [] for name in WAYS}
    for name in WAYS:  # the untimed first round (see the module's doc)
        run = PREPARE[name](path, **options)
        try:
            run(warmup + min(steps, 20))
        finally:
            _close(run)
    for _ in range(repeats):
        for name in WAYS:
            run = PREPARE[name](path, **options)
            try:
                rate, peak = measure(run, steps, warmup, clock)
            finally:
                _close(run)
            del run
            rates[name].append(rate)
            memory[name].append(None if name in OTHER_PROCESS else peak)
    syncs = {name: None for name in WAYS}
    if clock.cuda:
        for name in WAYS:
            if name not in OTHER_PROCESS:
                syncs[name] = count_syncs(PREPARE[name](path, **options), steps, warmup, clock)
                gc.collect()
    median = {name: statistics.median(rates[name]) for name in WAYS}
    # Each round's ratio compares ways timed seconds apart, so a machine whose speed drifts
    # (other work, throttling) moves both sides of it alike; the median of those is the ratio.
    ratio = {name: statistics.median(r / p for r, p in zip(rates[name], rates["plain"])) for name in WAYS}
    return {
        "scenario": str(path),
        "device": resolved,
        "steps": steps,
        "warmup": warmup,
        "repeats": repeats,
        "history_mb": history_mb,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "gdtui": __version__,
        "memory": clock.memory_kind,
        "ways": {
            name: {
                "label": LABELS[name],
                "steps_per_s": median[name],
                "vs_plain": ratio[name],
                "peak_mb": None if None in memory[name] else statistics.median(memory[name]),
                "syncs_per_step": syncs[name],
                "rounds_steps_per_s": rates[name],
            }
            for name in WAYS
        },
        "ratios": {"headless/plain": ratio["headless"], "run/plain": ratio["run"], "trainer/plain": ratio["trainer"],
                   # the target for run mode through the trainer: against headless, round by round
                   "trainer/headless": statistics.median(t / h for t, h in zip(rates["trainer"], rates["headless"]))},
    }


# --- the table ------------------------------------------------------------------------------


MEMORY_NOTES = {
    "rss_peak_growth": (
        "peak mem: how far the process's resident memory (VmHWM) rose over the loaded scenario, warm-up included "
        "(memory the allocator kept from an earlier round can hide part of it)"
    ),
    "cuda_max_allocated_growth": "peak mem: torch.cuda.max_memory_allocated over what the loaded scenario holds, warm-up included",
    None: "peak mem: not measured on this device or system",
}


def format_table(result: dict) -> str:
    device = result["device"]
    rounds = f"{result['repeats']} round{'s' if result['repeats'] != 1 else ''}"
    lines = [
        f"gdtui bench {result['scenario']} on {device}: {result['steps']} steps after {result['warmup']} warm-up, "
        f"median of {rounds} (torch {result['torch']}, {result['threads']} threads)",
        "vs (a): the median over the rounds of each round's steps/s over the plain loop's",
        "",
        f"{'':28}{'steps/s':>10}{'vs (a)':>8}{'peak mem':>11}{'syncs/step':>12}",
    ]
    for name, w in result["ways"].items():
        syncs = ("n/a" if name in OTHER_PROCESS else "n/a on " + device.split(":")[0]) if w["syncs_per_step"] is None \
            else f"{w['syncs_per_step']:.1f}"
        mb = w["peak_mb"]
        mem = "n/a" if mb is None else f"+{mb:.0f} MB" if mb >= 10 else f"+{mb:.1f} MB"
        rate = f"{w['steps_per_s']:.1f}" if w["steps_per_s"] >= 10 else f"{w['steps_per_s']:.3f}"
        lines.append(f"{w['label']:<28}{rate:>10}{w['vs_plain']:>8.2f}{mem:>11}{syncs:>12}")
    lines.append(f"{'(d) vs (b)':<28}{'':>10}{result['ratios']['trainer/headless']:>8.2f}"
                 "   the median of each round's (d) over its (b)")
    note = (f"{MEMORY_NOTES[result['memory']]}; (b), (c) and (d) keep rewind checkpoints (--history-mb "
            f"{result['history_mb']:g}); (d) runs in a trainer process, whose memory this process does not see.")
    return "\n".join(lines + [""] + textwrap.wrap(note, 100))


# --- the command ----------------------------------------------------------------------------


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive whole number")
    return value


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments of ``gdtui bench`` (its subparser in gdtui.cli)."""
    p.add_argument("scenario", help="the scenario file")
    p.add_argument("--steps", type=_positive_int, metavar="N", help=f"timed steps per way and round (default: about {TARGET_SECONDS:g} s of the plain loop, {MIN_STEPS} to {MAX_STEPS})")
    p.add_argument("--device", default="cpu", metavar="DEV", help="cpu, cuda, cuda:N or mps (default cpu)")
    p.add_argument("--repeats", type=_positive_int, default=DEFAULT_REPEATS, metavar="R", help=f"rounds of a, b, c, d; the table gives medians (default {DEFAULT_REPEATS})")
    p.add_argument("--history-mb", type=float, default=256, metavar="MB", help="the engine's rewind memory, as in gdtui (default 256; 0 turns rewind off)")
    p.add_argument("--json", action="store_true", help="print the table as JSON")


def main(argv: Sequence[str] | None = None) -> int:
    """``gdtui bench ARGS``, as the command line runs it."""
    from gdtui.cli import main as cli_main

    return cli_main(["bench", *(sys.argv[1:] if argv is None else argv)])


def run_command(args: argparse.Namespace) -> int:
    from gdtui.engine import ScenarioError
    from gdtui.engine.scenario import check_arguments

    try:
        check_arguments(args.scenario, args.device)  # named as the user typed it
        # Resolved once: the scenario may change the working directory, and each way loads it again.
        result = bench(Path(os.path.abspath(args.scenario)), args.device, args.steps, args.repeats, args.history_mb)
        result["scenario"] = args.scenario
    except (ScenarioError, BenchError) as exc:
        print(exc, file=sys.stderr)
        return getattr(exc, "status", 2)
    except KeyboardInterrupt:
        return 130
    print(json.dumps(result, indent=2) if args.json else format_table(result))
    return 0
