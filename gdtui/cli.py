"""``gdtui SCENARIO [options] [-- ARGS]``: run headless, or open the step-debugger."""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence

from gdtui import __version__

DEFAULT_STEPS = 100
#: Headless steps when a stop condition is given and --steps is not: run until it holds, within reason.
UNTIL_STEPS = 100_000


#: The exit status when stdout's reader closed the pipe: 128 + SIGPIPE, as a shell reports a
#: Unix tool that SIGPIPE ended.
EXIT_PIPE_CLOSED = 141
#: Tensors of up to this many elements (or --trace-max-elements, when more) carry their values to
#: the screen, the step lines and the reports; --trace-max-elements alone decides what the trace keeps.
SHOWN_VALUES = 4096
#: --seed seeds torch, numpy and random: torch takes at most 64 bits.
MAX_SEED = 2**64 - 1


def _whole(text: str, what: str, least: int) -> int:
    """``text`` as a whole number of at least ``least``, else one line saying what is allowed."""
    allowed = f"give a whole number of {what}, {least} or more"
    try:
        value = int(text)
    except ValueError:
        try:
            number = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number; {allowed}") from None
        if math.isfinite(number) and number == int(number) and number >= least:
            allowed = f"write it as {int(number)}"
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number; {allowed}") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"{text} is {'negative' if value < 0 else f'less than {least}'}; {allowed}")
    return value


def _count(what: str, least: int = 0):
    """An argparse type for a whole number of ``what``: --steps 1e9 says so in plain words."""
    return lambda text: _whole(text, what, least)


def _finite(text: str, allowed: str) -> float:
    """``text`` as a finite float, else one line: not a number, too large (1e400 is inf), not finite."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number; {allowed}") from None
    if math.isnan(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number; {allowed}")
    if math.isinf(value):
        word = "too large" if text.strip().lstrip("+-").lower() not in ("inf", "infinity") else "not finite"
        raise argparse.ArgumentTypeError(f"{text!r} is {word}; {allowed}")
    return value


def session_options(args: argparse.Namespace, watch_activations: bool) -> dict:
    """The Session's keyword arguments from the command line (headless and the trainer)."""
    return dict(
        seed=args.seed,
        device=args.device,
        history_mb=args.history_mb,
        max_values=max(args.trace_max_elements, SHOWN_VALUES),
        mode=args.mode,
        lr=args.lr,
        grad_source=args.grad_source,
        watch_activations=watch_activations,
        args=args.scenario_args,
        gradcheck_samples=args.gradcheck_samples,
    )


def _learning_rate(text: str) -> float:
    allowed = "give a finite positive learning rate such as 0.01"
    value = _finite(text, allowed)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} is not positive; {allowed}")
    return value


def _not_negative(allowed: str) -> Callable[[str], float]:
    """An argparse type: a finite number, 0 or more; ``allowed`` says what the flag takes."""

    def parse(text: str) -> float:
        value = _finite(text, allowed)
        if value < 0:
            raise argparse.ArgumentTypeError(f"{text} is negative; {allowed}")
        return value

    return parse


_megabytes = _not_negative("give the memory for rewind in MB, such as 256; 0 turns rewind off")
_minutes = _not_negative("give the minutes a trainer with no client waits, such as 30; 0 waits forever")


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or not 0 <= value <= MAX_SEED:
        what = "not a whole number" if value is None else ("negative" if value < 0 else "too large")
        raise argparse.ArgumentTypeError(f"{text!r} is {what}; give a whole number from 0 to {MAX_SEED}")
    return value


class _Parser(argparse.ArgumentParser):
    """Bad input is one line: argparse's error without the usage block above it."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (gdtui --help lists the options)\n")


#: A first word that names one of these is a command, not a file (``./bench`` opens a file named bench).
COMMANDS = ("bench", "examples", "example")


def build_commands() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The parser of ``gdtui COMMAND ...``, and each command's own parser by name."""
    from gdtui.bench import add_arguments as bench_arguments

    top = _Parser(prog="gdtui", add_help=False)
    commands = top.add_subparsers(title="commands", dest="command", metavar="COMMAND", parser_class=_Parser)
    parsers = {
        "bench": commands.add_parser(
            "bench", help="time a scenario: a plain loop, the headless engine and the run mode",
            description=BENCH_DESCRIPTION, epilog="Example: gdtui bench scenarios/mlp_bench.py --steps 50"),
        "examples": commands.add_parser(
            "examples", help="list the example scenarios gdtui ships, with what each shows",
            description="List the example scenarios: open one with gdtui example NAME."),
        "example": commands.add_parser(
            "example", help="open an example scenario by its name: gdtui example not_gate [options] [-- ARGS]",
            description="Open an example scenario by its name, with any option a scenario file takes "
                        "(gdtui --help lists them): gdtui example not_gate --headless --steps 5."),
    }
    bench_arguments(parsers["bench"])
    parsers["example"].add_argument("name", help="the example's name (gdtui examples lists them)")
    return top, parsers


BENCH_DESCRIPTION = (
    "Time a scenario three ways in alternation: (a) a plain PyTorch loop, (b) the headless engine, "
    "(c) the step-debugger's run mode without a screen. Prints steps/s, the ratios to (a), peak memory "
    "and host-device syncs per step."
)


def _commands_help() -> str:
    """The commands section of ``gdtui --help``, as argparse formats its subparsers."""
    top, _ = build_commands()
    text = top.format_help()
    return text[text.index("commands:"):].rstrip()


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="gdtui",
        description="A terminal step-debugger for PyTorch gradient descent.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
        "  gdtui scenarios/not_gate.py                         open the step-debugger\n"
        "  gdtui scenarios/not_gate.py --headless --steps 5    run 5 steps without the screen\n"
        "  gdtui S.py --headless -- --width 8                  S.py runs with sys.argv == ['S.py', '--width', '8']\n"
        "  gdtui scenarios/not_gate.py --listen                serve it on a socket, no screen; then:\n"
        "  gdtui --connect [PATH]                              open the screen on it (the only one, without PATH)\n"
        "  gdtui --connect [PATH] --status                     list your trainers, or print one's status\n"
        "  gdtui examples                                      list the example scenarios\n"
        "  gdtui example not_gate                              open one by its name\n"
        "  gdtui bench scenarios/mlp_bench.py                  time a scenario: gdtui bench --help\n"
        "\n" + _commands_help(),
    )
    p.add_argument("scenario", nargs="?", help="the scenario file (a Python module defining model, loss_fn, data, optimizer); "
                   "arguments after -- are the scenario's own: its sys.argv is [SCENARIO, *ARGS]")
    p.add_argument("-m", dest="module", metavar="MODULE", help="attach to a module's training loop, as python -m MODULE runs it "
                   "(docs/attach.md)")
    p.add_argument("--headless", action="store_true", help="run without the screen: print one line per step")
    p.add_argument("--steps", type=_count("steps"), metavar="N", help=f"headless: steps to run (default: the scenario's `steps`, else {DEFAULT_STEPS}; with --until, up to {UNTIL_STEPS})")
    p.add_argument("--mode", choices=["manual", "optim"], help="start in manual update (p -= lr * p.grad) or optimizer.step() mode")
    p.add_argument("--grad-source", choices=["autograd", "grad_fn"], help="start with autograd or the scenario's grad_fn as the gradient")
    p.add_argument("--seed", type=_seed, default=0, help="seed for torch, numpy and random before the scenario runs (default 0)")
    p.add_argument("--device", default="cpu", metavar="DEV", help="cpu, cuda, cuda:N or mps (default cpu)")
    p.add_argument("--lr", type=_learning_rate, metavar="LR", help="learning rate for every param group and the manual update")
    p.add_argument("--trace", metavar="FILE", help="write every step to FILE as JSON Lines, or as CSV for a .csv path")
    p.add_argument("--trace-max-elements", type=_count("elements"), default=4096, metavar="N", help="tensors larger than N are written to the trace as a summary (default 4096)")
    p.add_argument("--history-mb", type=_megabytes, default=256, metavar="MB", help="memory for rewind checkpoints (default 256; 0 turns rewind off)")
    p.add_argument("--quiet", action="store_true", help="headless: print only the final line")
    p.add_argument("--until", metavar="EXPR", help='stop when EXPR holds after a step, e.g. "loss < 0.001"')
    p.add_argument("--break", dest="breaks", action="append", default=[], metavar="EXPR", help="pause a continuous run when EXPR holds (repeatable); headless runs stop there")
    p.add_argument("--stop-on-rise", type=_count("steps", least=1), metavar="K", help="pause (headless: stop) when the loss rose K steps in a row")
    p.add_argument("--hints", action="store_true", help="headless: print the health hints under each step")
    p.add_argument("--gradcheck", action="store_true", help="headless: after the steps (default 0), compare autograd with finite differences; exit 1 if it fails")
    p.add_argument("--gradcheck-samples", type=_count("entries", least=1), default=4, metavar="N", help="the gradient check (--gradcheck, G) checks each tensor larger than 32 along one random direction, and at N of its entries where that disagrees (default 4)")
    p.add_argument("--compare", action="store_true", help="headless: after the steps, show the update manual mode and optimizer.step() would make next")
    p.add_argument("--optimizer-state", action="store_true", help="headless: after the steps, show the optimizer's state per tensor")
    p.add_argument("--no-zero-grad", action="store_true", help="skip zero_grad, so gradients accumulate (a teaching toggle)")
    p.add_argument("--listen", nargs="?", const="", metavar="PATH", help="serve the scenario's session on a Unix socket "
                   "at PATH (default: one in gdtui's socket folder), with no screen, until Ctrl-C")
    p.add_argument("--connect", nargs="?", const="", metavar="PATH", help="open the screen on the trainer at PATH "
                   "(with no PATH: the only one running; with --headless --steps N: step it with no screen)")
    p.add_argument("--status", action="store_true", help="with --connect: print the trainer's status (with no PATH: "
                   "list your trainers)")
    p.add_argument("--detach-timeout", type=_minutes, metavar="MINUTES", help="a trainer with no client ends after "
                   "MINUTES (default 30; --listen: 0, which waits forever)")
    p.add_argument("--version", action="version", version=f"gdtui {__version__}")
    return p


#: What --connect takes besides its PATH; --listen takes the session flags, not a headless run's.
_CONNECT_FLAGS = {"connect", "headless", "steps", "quiet", "status", "help", "version"}
_HEADLESS_ONLY = ("headless", "steps", "trace", "quiet", "hints", "gradcheck", "compare", "optimizer_state")


def _flag(parser: argparse.ArgumentParser, dest: str) -> str:
    return next(a.option_strings[-1] if a.option_strings else a.dest.upper() for a in parser._actions if a.dest == dest)


def _connect(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """``gdtui --connect [PATH] [--status | --headless --steps N]`` (gdtui.client and the screen do
    the work)."""
    from gdtui import client

    for action in parser._actions:
        if action.dest not in _CONNECT_FLAGS and getattr(args, action.dest, None) != action.default:
            parser.error(f"--connect takes no {_flag(parser, action.dest)}: the trainer has its scenario and settings")
    if args.scenario_args:
        parser.error("--connect takes no -- ARGS: the trainer has its scenario and settings")
    if args.status and (args.headless or args.steps is not None or args.quiet):
        parser.error("--connect --status only reads the trainer's status; --headless --steps N steps it")
    if args.headless and args.steps is None:
        parser.error("--connect --headless steps a trainer: give --steps N")
    if not args.headless and (args.steps is not None or args.quiet):
        parser.error("--connect --steps N steps a trainer with no screen: add --headless")
    path = args.connect
    if args.status:
        if not path:
            return client.list_trainers(sys.stdout, sys.stderr)
        return client.remote_steps(path, None, sys.stdout, sys.stderr, str)
    path = path or client.pick_trainer(sys.stdout, sys.stderr)
    if not path:
        return 1
    if not args.headless:
        return _connect_screen(path)
    from gdtui.engine.headless import step_line

    return client.remote_steps(path, args.steps, sys.stdout, sys.stderr, step_line, quiet=args.quiet)


def _connect_screen(path: str) -> int:
    """``gdtui --connect PATH``: the step-debugger's screen on the trainer there (no torch here).
    A trainer that does not answer, or has a screen already, is one line and status 2."""
    from gdtui.client import TrainerError, trainer_status

    try:
        hello = trainer_status(path)
    except TrainerError as exc:
        print(f"gdtui --connect: {exc}", file=sys.stderr)
        return 2
    if hello.client is not None:
        print(f"gdtui --connect: the trainer at {path} already has a client: {hello.client}; detach it first",
              file=sys.stderr)
        return 2
    from gdtui.app import make_app

    return _run_screen(make_app(hello.scenario, connect=path))


def _run_screen(app) -> int:
    """Run the step-debugger; once the terminal is restored, say how to reconnect after ``d``,
    or why the scenario never loaded."""
    app.run()
    status = app.return_code or 0
    detached = getattr(app, "detached", None)  # (a test may run a stand-in)
    if detached is not None:
        from gdtui.client import ago

        step = f"paused at step {app.state.step}" if app.state is not None else "paused"
        wait = f", for {ago(detached.wait_s)} with no screen" if detached.wait_s else ""
        with contextlib.suppress(OSError):  # after a hang-up the terminal may be gone
            print(f"gdtui: detached from {detached.scenario}; its trainer (pid {detached.pid}) waits, {step}{wait}\n"
                  f"reconnect with: gdtui --connect {detached.path}")
    elif status == 2 and app.error:  # the scenario never loaded: its error stays on the terminal
        print(app.error, file=sys.stderr)
    return status


def _listen(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """``gdtui SCENARIO --listen [PATH] [session flags] [-- ARGS]``: a trainer in this process, with no screen."""
    for dest in _HEADLESS_ONLY:
        if getattr(args, dest) != parser.get_default(dest):
            parser.error(f"--listen serves a screen, which steps it; {_flag(parser, dest)} is for a headless run")
    from gdtui.engine import ScenarioError
    from gdtui.engine.scenario import check_arguments
    from gdtui.trainer import serve

    try:
        check_arguments(args.scenario, args.device)
    except ScenarioError as exc:
        print(exc, file=sys.stderr)
        return 2
    args.socket, args.listen, args.wait = args.listen or None, True, False
    status = serve(args)
    _leave_now_if_a_step_is_stuck(status)
    return status


def _open_trace(args: argparse.Namespace, target: str):
    """The --trace writer, or None once the one line saying why not is printed: never the file
    being run (opening it would empty it before it loads). The path is made absolute now: the
    scenario may change the working directory (export compares with it)."""
    from gdtui.engine.targets import same_file
    from gdtui.engine.trace import OPEN_REASONS, TraceWriter

    if same_file(args.trace, target):
        print(f"--trace {args.trace}: that is the scenario file, which the trace would overwrite; "
              "choose another path", file=sys.stderr)
        return None
    try:
        return TraceWriter(os.path.abspath(args.trace), args.trace_max_elements, label=f"--trace {args.trace}")
    except OSError as exc:
        reason = OPEN_REASONS.get(exc.errno) or f"cannot write it ({exc.strerror}); choose a writable path"
        print(f"--trace {args.trace}: {reason}", file=sys.stderr)
        return None


def _screen(args: argparse.Namespace) -> int:
    """The step-debugger: the screen in this process, which never imports torch (unless --trace
    or a --device other than cpu needs checking first), and the scenario in a trainer child."""
    path = os.path.abspath(args.trace) if args.trace else None
    if args.trace or args.device != "cpu":
        # A mistyped path, device or trace is the command line's error, said before the screen opens.
        from gdtui.engine.errors import ScenarioError
        from gdtui.engine.scenario import check_arguments

        try:
            check_arguments(args.scenario, args.device)
        except ScenarioError as exc:
            print(exc, file=sys.stderr)
            return 2
        if args.trace:
            trace = _open_trace(args, args.scenario)
            if trace is None:
                return 2
            trace.close()
    elif not os.path.isfile(args.scenario):
        what = "no such scenario file; check the path" if not os.path.exists(args.scenario) else \
            "not a file; name the scenario's .py file"
        print(f"{args.scenario}: {what}", file=sys.stderr)
        return 2
    from gdtui import config
    from gdtui.app import make_app
    from gdtui.client_port import trainer_flags

    detach_timeout = args.detach_timeout
    if detach_timeout is None:
        try:
            detach_timeout = config.load().detach_timeout_minutes
        except config.ConfigError as exc:
            print(exc, file=sys.stderr)
            return 2

    flags = trainer_flags(seed=args.seed, device=args.device, history_mb=args.history_mb, mode=args.mode, lr=args.lr,
                          grad_source=args.grad_source, trace=path, trace_max_elements=args.trace_max_elements,
                          gradcheck_samples=args.gradcheck_samples, until=args.until, breaks=args.breaks,
                          stop_on_rise=args.stop_on_rise, no_zero_grad=args.no_zero_grad,
                          detach_timeout=detach_timeout)
    return _run_screen(make_app(args.scenario, flags=flags, args=args.scenario_args))


def configure(session, args: argparse.Namespace) -> None:
    """Apply the stop conditions and toggles of the command line to a new session.

    Every valid one is applied; then a ConditionError names the ones that are not.
    """
    from gdtui.engine.conditions import ConditionError, RisingLoss

    problems = []
    for text, kind in [(args.until, "until")] + [(b, "break") for b in args.breaks]:
        if text is not None:
            try:
                session.panel.add_condition(text, kind)
            except ConditionError as exc:
                problems.append(f"--{kind} {exc}")
    if args.stop_on_rise:
        session.panel.set_rising(RisingLoss(args.stop_on_rise))
    session.panel.set_skip_zero_grad(args.no_zero_grad)
    if problems:
        raise ConditionError("; ".join(problems))


def _leave_now_if_a_step_is_stuck(status: int) -> None:
    """Quit at once even while the scenario's code blocks in a worker thread.

    The screen is already restored and the trace closed; a thread stuck in the
    user's forward (a 30 s sleep, a hung data loader) cannot be interrupted, and
    Python would otherwise wait for it before exiting.
    """
    import os
    import threading

    stuck = [t for t in threading.enumerate() if t is not threading.main_thread() and t.is_alive() and not t.daemon]
    if stuck:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)


#: How long a finished headless run waits for the threads its scenario started before it leaves them.
THREAD_GRACE_S = 2.0


def _end_despite_scenario_threads(status: int, before: set[threading.Thread], trace) -> None:
    """Exit now with ``status`` if threads the run started (not in ``before``) outlive it.

    Python waits at exit for every non-daemon thread: a scenario that starts one which never
    ends (a poller, a prefetcher) would hang the finished run. Give them THREAD_GRACE_S to
    finish, then say in one line that they were left running and leave without them.
    """
    deadline = time.monotonic() + THREAD_GRACE_S
    for thread in threading.enumerate():
        if thread not in before and not thread.daemon:
            thread.join(max(0.0, deadline - time.monotonic()))
    left = [t.name for t in threading.enumerate() if t not in before and t.is_alive() and not t.daemon]
    if not left:
        return
    if trace:
        trace.close()
    try:
        print(f"gdtui: the scenario's thread{'s' if len(left) > 1 else ''} {', '.join(left)} still ran "
              f"{THREAD_GRACE_S:g} s after the run; left running, exiting with status {status}",
              file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
    except (BrokenPipeError, OSError):
        pass
    os._exit(status)


def _write_nowhere() -> None:
    """Send what is left of stdout and stderr to /dev/null: Python would otherwise report the
    closed pipe once more when it flushes them at exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        try:
            os.dup2(devnull, stream.fileno())
        except (AttributeError, OSError, ValueError):  # not a real file (a test's capture)
            pass
    os.close(devnull)


def run(args: argparse.Namespace, options: dict, trace) -> int:
    """The headless run: steps, then the diagnostics asked for. Returns the exit status.

    SIGTERM and SIGHUP stop it as Ctrl-C does, the load included: the trace gets its end line.
    """
    from gdtui.engine.headless import stop_signals

    with stop_signals():
        status = _run(args, options, trace)
    return _trace_failed(trace, status)


def _trace_failed(trace, status: int, shown: bool = False) -> int:
    """Close the trace; if a write failed, say so (again when ``shown``: on a screen now gone), status 2."""
    if trace is None:
        return status
    trace.close()
    error = trace.take_error()
    if shown or error:
        error = error or trace.error
        if error:
            print(error, file=sys.stderr)
            return status or 2
    return status


def _run(args: argparse.Namespace, options: dict, trace) -> int:
    from gdtui.engine import ScenarioError, Session
    from gdtui.engine.ascii import fall_back_to_ascii
    from gdtui.engine.conditions import ConditionError
    from gdtui.engine.headless import EXIT_CHECK_FAILED, EXIT_OK, interrupted_how, interrupted_status, run_headless

    fall_back_to_ascii(sys.stdout, sys.stderr)  # a C locale cannot print ‖g‖: spell it |g|, never raise
    try:
        session = Session(args.scenario, **options)
        configure(session, args)
    except (ScenarioError, ConditionError) as exc:
        print(exc, file=sys.stderr)
        if trace:
            trace.end(0, "error", str(exc))
        return 2
    except KeyboardInterrupt as exc:
        print(f"{interrupted_how(exc)} while loading the scenario", file=sys.stderr)
        if trace:
            trace.end(0, "interrupted")
        return interrupted_status(exc)
    diagnostics = args.gradcheck or args.compare or args.optimizer_state
    steps = args.steps
    if steps is None:
        if args.until or args.breaks or args.stop_on_rise:
            steps = UNTIL_STEPS
        else:
            steps = 0 if diagnostics else (session.scenario.steps or DEFAULT_STEPS)
    status = run_headless(session, steps, trace=trace, quiet=args.quiet, hints=args.hints)
    if status != EXIT_OK or not diagnostics:
        return status
    from gdtui.engine.compare import compare_updates
    from gdtui.engine.gradcheck import gradient_check
    from gdtui.engine.optstate import optimizer_state

    try:
        reports = []
        if args.gradcheck:
            reports.append(gradient_check(session))
        if args.compare:
            reports.append(compare_updates(session))
        if args.optimizer_state:
            reports.append(optimizer_state(session))
    except ScenarioError as exc:
        print(exc, file=sys.stderr)
        return 2
    for report in reports:
        print("\n".join(report.lines()))
    if args.gradcheck and not reports[0].ok:
        return EXIT_CHECK_FAILED
    return EXIT_OK


def _command(argv: list[str]) -> int:
    """``gdtui bench|examples|example ...``."""
    from gdtui import catalog as examples

    name = argv[0]
    if name == "example":
        # The example's name, then the options of a scenario file: gdtui example not_gate --headless.
        words = argv[1 : argv.index("--") if "--" in argv else len(argv)]
        if not words or words[0] in ("-h", "--help"):
            build_commands()[1]["example"].parse_args(words[:1])
        if words[0].startswith("-"):
            print(f"gdtui example: the example's name comes first: gdtui example NAME {words[0]} ...", file=sys.stderr)
            return 2
        path = examples.find(words[0])
        if path is None:
            print(examples.unknown(words[0]), file=sys.stderr)
            return 2
        return main([str(path), *argv[2:]])
    top, _ = build_commands()
    args = top.parse_args(argv)
    if name == "examples":
        print(examples.listing())
        return 0
    from gdtui.bench import run_command

    return run_command(args)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] and argv[0] in COMMANDS:
        return _command(argv)
    # What follows the first -- is the scenario's own command line (its sys.argv[1:]), as for
    # `python S.py ARGS`; gdtui's flags never reach the scenario.
    cut = argv.index("--") if "--" in argv else len(argv)
    parser = build_parser()
    args = parser.parse_args(argv[:cut])
    args.scenario_args = argv[cut + 1 :]
    if args.connect is not None:
        return _connect(parser, args)
    if args.status:
        parser.error("--status reads a trainer's status: gdtui --connect [PATH] --status")
    if args.module and args.scenario is not None:
        parser.error(f"-m {args.module} runs a module; name no file besides it ({args.scenario})")
    if args.scenario is None and not args.module:
        parser.error("the following arguments are required: scenario")
    from gdtui.cli_attach import refused_flag, wants_attach

    attach = wants_attach(args)
    if attach:
        typed = argv[:cut]  # a flag given with its default value (--device cpu) counts too
        given = {a.dest for a in parser._actions
                 if any(t == o or t.startswith(o + "=") for o in a.option_strings if o.startswith("--") for t in typed)}
        given |= {dest for dest in vars(args) if getattr(args, dest) != parser.get_default(dest)}
        refused = refused_flag(args, given) or (None if args.headless else
                                                "the step-debugger does not attach to scripts yet; add --headless")
        if refused or args.listen is not None:
            print(f"gdtui: {refused or 'a training script cannot be served yet (--listen); run it with --headless'}",
                  file=sys.stderr)
            return 2
    if args.listen is not None:
        return _listen(parser, args)
    if args.headless and args.detach_timeout is not None:
        parser.error("--detach-timeout is a trainer's (--listen); a headless run has no client to wait for")
    if not args.headless:
        return _screen(args)
    options = session_options(args, watch_activations=args.hints)
    trace = None
    if args.trace:
        trace = _open_trace(args, args.scenario or args.module)
        if trace is None:
            return 2
    if attach:
        from gdtui.cli_attach import run_attached_cli

        try:
            status = run_attached_cli(args, trace)
        finally:
            if trace:
                trace.close()
        if status is not None:
            return status
        if args.trace:  # a scenario after all: its own trace
            trace = _open_trace(args, args.scenario)
            if trace is None:
                return 2
    try:
        before = set(threading.enumerate())
        status = run(args, options, trace)
        _end_despite_scenario_threads(status, before, trace)
        return status
    except KeyboardInterrupt as exc:  # (headless: only in a diagnostic, after the trace's end line)
        return 128 + getattr(exc, "signum", 2)
    except BrokenPipeError:  # stdout's reader is gone (gdtui ... | head): exit quietly, as Unix tools do
        _write_nowhere()
        return EXIT_PIPE_CLOSED
    finally:
        if trace:
            trace.close()


if __name__ == "__main__":
    sys.exit(main())
