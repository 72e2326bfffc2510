"""``gdtui SCRIPT --headless [--steps N] [--trace FILE] [--until/--break EXPR] [-- ARGS]``: attached to a script.

The command line's side of gdtui.engine.attach_run: which flags apply to a script (the script
chooses its device and learning rate), the stop conditions, and the one-line errors.
"""

from __future__ import annotations

import argparse
import os
import sys

#: Flags that do not apply attached, and why (given, they are a one-line error).
NOT_ATTACHED = {
    "device": "the script chooses its device",
    "lr": "the script's optimizer has its learning rate",
    "grad_source": "a script has no grad_fn",
    "gradcheck": "the gradient check needs a loss function of the parameters, which a script does not give",
    "compare": "it needs a loss function of the parameters, which a script does not give",
    "optimizer_state": "it is not built for scripts yet",
    "no_zero_grad": "the script calls zero_grad itself",
}


def refused_flag(args: argparse.Namespace, given: set[str]) -> str | None:
    """The first flag given that does not apply attached, as a one-line error; else None."""
    for dest, why in NOT_ATTACHED.items():
        if dest in given:
            return f"--{dest.replace('_', '-')} does not apply to a training script: {why}"
    return None


def wants_attach(args: argparse.Namespace) -> bool:
    """A module (-m), or a file that reads as a training script rather than a scenario."""
    if args.module:
        return True
    from gdtui.engine.script_kind import is_scenario_file

    return os.path.isfile(args.scenario) and not is_scenario_file(args.scenario)


def run_attached_cli(args: argparse.Namespace, trace) -> int | None:
    """Run the script attached; None when it turned out to be a scenario (the caller loads it)."""
    from gdtui.engine.attach_run import EXIT_NEITHER, AttachOptions, defines_scenario, neither_message, run_attached
    from gdtui.engine.conditions import ConditionError, RisingLoss, parse_condition

    conditions = []
    try:
        for text, kind in [(args.until, "until")] + [(b, "break") for b in args.breaks]:
            if text is not None:
                try:
                    conditions.append(parse_condition(text, kind=kind))
                except ConditionError as exc:
                    raise ConditionError(f"--{kind} {exc}") from None
    except ConditionError as exc:
        print(exc, file=sys.stderr)
        return 2
    options = AttachOptions(limit=args.steps, conditions=tuple(conditions),
                            rising=RisingLoss(args.stop_on_rise) if args.stop_on_rise else None,
                            max_values=args.trace_max_elements, quiet=args.quiet, mode=args.mode, hints=args.hints)
    target = args.module or args.scenario
    status, namespace = run_attached(target, args.scenario_args, module=bool(args.module), seed=args.seed,
                                     options=options, trace=trace)
    if status == EXIT_NEITHER and namespace is not None:
        if not args.module and defines_scenario(namespace):
            return None
        if trace is not None:
            trace.end(0, "error", neither_message(target))
        print(neither_message(target), file=sys.stderr)
    return status
