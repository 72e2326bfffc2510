"""Export: the trace so far, as JSON Lines or CSV, written safely.

The trace a session writes is an append-only log that may hold ``rewind`` and
``reset`` events. :func:`timeline` replays it into the steps of the current
timeline; :func:`export_trace` writes them to a temporary file beside the
target and renames it into place, so a failed write loses nothing; a replaced file
keeps its mode, a new one gets the user's umask.
"""

from __future__ import annotations

import csv
import errno
import json
import math
import os
import secrets
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from gdtui.engine.summarize import flat_values
from gdtui.engine.targets import TargetError, export_target


class ExportError(Exception):
    """A write that failed; one line saying why and what to do. Nothing was changed."""


def read_lines(path: str | Path) -> list[dict[str, Any]]:
    """The events of a trace file; a torn last line (a run killed mid-write) is skipped."""
    events = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return events


def timeline(events: Iterable[dict[str, Any]]) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The start event and the step events that make up the current timeline."""
    start: dict[str, Any] | None = None
    steps: list[dict[str, Any]] = []
    for event in events:
        kind = event.get("event")
        if kind == "start":
            start, steps = event, []
        elif kind == "step":
            steps = [s for s in steps if s["step"] < event["step"]]
            steps.append(event)
        elif kind == "rewind":
            steps = [s for s in steps if s["step"] <= event["step"]]
        elif kind == "reset":
            steps = []
    return start, steps


def _norm(value: Any) -> float:
    """The 2-norm of traced values (nested lists) or of a traced summary."""
    if isinstance(value, dict):
        return float(value.get("norm", math.nan))
    if value is None:
        return math.nan
    return math.sqrt(sum(float(v) ** 2 for v in flat_values(value)))  # float() reads "nan", "inf", "-inf" too


def csv_columns(steps: Iterable[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """The metrics and the tensors that the steps name, in the order first named."""
    metrics: list[str] = []
    tensors: list[str] = []
    for s in steps:
        metrics += [m for m in s.get("metrics", {}) if m not in metrics]
        tensors += [t for t in s.get("params", {}) if t not in tensors]
    return metrics, tensors


def csv_header(metrics: list[str], tensors: list[str]) -> list[str]:
    header = ["step", "epoch", "batch", "mode", "grad_source", "lr", "loss", *metrics]
    return header + [f"grad_norm[{t}]" for t in tensors] + [f"param_norm[{t}]" for t in tensors]


def csv_row(s: dict[str, Any], metrics: list[str], tensors: list[str]) -> list[Any]:
    """One step's row under ``csv_header(metrics, tensors)``: a column it lacks is empty (NaN for a norm)."""
    row = [s["step"], s.get("epoch"), s.get("batch"), s.get("mode"), s.get("grad_source"), s.get("lr"), s.get("loss")]
    row += [s.get("metrics", {}).get(m) for m in metrics]
    row += [_norm(s.get("grads", {}).get(t)) for t in tensors]
    row += [_norm(s.get("params", {}).get(t)) for t in tensors]
    return row


def csv_rows(steps: list[dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    """One row per step: step, epoch, batch, mode, lr, loss, each metric, each tensor's grad and param norm."""
    metrics, tensors = csv_columns(steps)
    return csv_header(metrics, tensors), [csv_row(s, metrics, tensors) for s in steps]


def _write_atomically(path: Path, write) -> None:
    """Write ``path`` through a temporary file in its folder, renamed into place.

    A new file gets the mode the user's umask gives (the kernel applies it to 0o666); a file
    replaced keeps its mode.
    """
    folder = path.parent if str(path.parent) else Path(".")
    tmp = None
    try:
        try:
            mode = stat.S_IMODE(os.stat(path).st_mode)
        except FileNotFoundError:
            mode = None
        for _ in range(100):
            tmp = folder / f".{path.name}.{secrets.token_hex(4)}.tmp"
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
                break
            except FileExistsError:
                tmp = None
        else:
            raise FileExistsError(errno.EEXIST, "no free name for a temporary file")
        with open(fd, "w", encoding="utf-8", newline="") as f:
            if mode is not None:
                os.chmod(fd, mode)
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        if tmp and os.path.exists(tmp):
            os.unlink(tmp)
        reason = exc.strerror or str(exc)
        raise ExportError(f"cannot write {path}: {reason}; choose another path (nothing was changed)") from None


def export_trace(trace_path: str | Path, out_path: str | Path, fmt: str | None = None,
                 kept: Iterable[tuple[str | Path | None, str]] = ()) -> int:
    """Write the current timeline of ``trace_path`` to ``out_path`` as ``jsonl`` or ``csv``.

    The format defaults to the suffix of ``out_path`` as given (``.csv`` is CSV,
    anything else JSON Lines), even when it is a symlink to another name. A symlink is followed: its target is replaced. ``kept`` are the
    files it must never replace, with what they are (the open scenario, the trace
    log): see :func:`gdtui.engine.targets.export_target`. Returns the number of
    steps written; raises ExportError.
    """
    try:
        out = export_target(out_path, [(trace_path, "the trace log being written"), *kept])
    except TargetError as exc:
        raise ExportError(str(exc)) from None
    # The name the user typed says the format, not a symlink's target.
    fmt = fmt or ("csv" if Path(out_path).suffix.lower() == ".csv" else "jsonl")
    try:
        start, steps = timeline(read_lines(trace_path))
    except OSError as exc:
        raise ExportError(f"cannot read the trace {trace_path}: {exc.strerror or exc}") from None

    def write_jsonl(f) -> None:
        for event in ([start] if start else []) + steps:
            f.write(json.dumps(event, allow_nan=False) + "\n")
        f.write(json.dumps({"event": "end", "steps": len(steps), "reason": "export"}) + "\n")

    def write_csv(f) -> None:
        header, rows = csv_rows(steps)
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)

    _write_atomically(out, write_csv if fmt == "csv" else write_jsonl)
    return len(steps)
