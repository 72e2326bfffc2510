"""The trace: one JSON object per line, flushed as it is written (the app's own log: when read).

Lines: a ``start`` event, one ``step`` event per finished step, and an ``end``
event. The step-debugger also writes ``rewind`` (``{"event": "rewind", "step": k}``:
the steps after k no longer count) and ``reset`` events, so a trace is an
append-only log; :mod:`gdtui.engine.export` turns it into the current timeline. Values are what ``tensor.tolist()`` gives, unrounded; a tensor with more
than ``max_elements`` elements is written as its summary instead. NaN and
±Infinity, which JSON has no words for, are written as the strings ``"nan"``,
``"inf"`` and ``"-inf"``, so every line is strict JSON.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import json
import math
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

import torch

from gdtui import __version__
from gdtui.engine.export import csv_columns, csv_header, csv_row
from gdtui.engine.records import StepRecord, TensorView


def _finite(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return "nan" if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    return obj


#: The step-debugger's own trace (no --trace given: the log that ``e`` exports) writes a
#: tensor whole up to this many elements, else its summary. Every value of every tensor,
#: every step, costs a large model more time and disk a step than the step; --trace keeps them.
EXPORT_LOG_MAX_ELEMENTS = 64
#: ...and once it holds this many bytes, its step lines leave the tensors out (step, loss, lr
#: and metrics stay), so a long run of a large model cannot fill the temp folder: a step line
#: with a large model's tensors is far longer than one without them.
EXPORT_LOG_TENSOR_BYTES = 512 * 2**20


def _open_for_writing(path: Path) -> int:
    """``path`` opened for writing, truncated (created with the user's umask). A FIFO is opened
    without waiting: one that no one reads raises ENXIO at once, where a plain open would block."""
    nonblock = getattr(os, "O_NONBLOCK", 0)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | nonblock | getattr(os, "O_CLOEXEC", 0), 0o666)
    if nonblock:
        try:
            import fcntl

            fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~nonblock)
        except OSError:
            os.close(fd)
            raise
    return fd


#: Why a trace cannot be opened, for the errors whose words (strerror) do not say it.
OPEN_REASONS = {errno.ENXIO: "it is a FIFO that nothing reads; start its reader first, or choose another path"}

#: What to do when a write fails, by errno.
_WRITE_ADVICE = {
    errno.ENOSPC: "free some space or choose another path",
    errno.EFBIG: "raise the file size limit (ulimit -f) or trace fewer steps",
    errno.EPIPE: "its reader closed it; keep the reader open or choose a file",
}


class TraceWriter:
    """Writes a trace to ``path``; a line per event, flushed at once unless ``flush_each`` is False
    (then :meth:`flush` before reading it). A ``.csv`` path gets a CSV row per step instead, the
    columns of an export (:func:`gdtui.engine.export.csv_rows`), fixed by the first step.

    A write that fails (a full disk, ``ulimit -f``, a reader that went away) never raises: the
    trace ends at its last whole line (a regular file is cut back to it), nothing more is
    written, and :attr:`error` says why in one line that starts with ``label``. Raises OSError
    when the file cannot be opened; a FIFO that no one reads is refused (ENXIO) rather than
    waited for.
    """

    #: Past this many bytes waiting (flush_each False), they are written.
    BUFFER_BYTES = 1 << 16
    #: A lazy trace keeps at most this many step records before it turns them into lines.
    LAZY_RECORDS = 4096

    def __init__(self, path: str | Path, max_elements: int = 4096, flush_each: bool = True,
                 tensor_bytes: int | None = None, label: str | None = None, lazy: bool = False):
        self.path = Path(path)
        #: Step records are kept as they come and turned into lines later (:meth:`write_pending`),
        #: in order, at the latest when LAZY_RECORDS wait, another event comes, or a flush: the
        #: file ends the same, byte for byte, as one written at each step.
        self.lazy = lazy
        self._records: list[StepRecord] = []
        self.max_elements = max_elements
        self.flush_each = flush_each
        #: Past this many bytes written, step lines carry no tensors (None: always).
        self.tensor_bytes = tensor_bytes
        #: The first step written without its tensors, once the log has reached ``tensor_bytes``.
        self.tensors_left_out_from: int | None = None
        self.label = label or f"the trace {self.path}"
        #: Why the trace stopped being written (one line), or None.
        self.error: str | None = None
        self._error_taken = False
        self.csv = self.path.suffix.lower() == ".csv"
        self._columns: tuple[list[str], list[str]] | None = None  # CSV: the metrics and tensors
        self._start: dict[str, Any] | None = None
        self._bytes = 0  # bytes of whole lines on disk or waiting
        self._written = 0  # bytes of whole lines on disk
        self._last_step: int | None = None  # the last step on disk
        self._waiting: list[bytes] = []
        self._waiting_step: int | None = None
        self._waiting_bytes = 0
        self._fd: int | None = _open_for_writing(self.path)
        self._regular = stat.S_ISREG(os.fstat(self._fd).st_mode)

    @classmethod
    def export_log(cls, max_elements: int, prefix: str = "gdtui-trace-", lazy: bool = False) -> TraceWriter:
        """The step-debugger's own trace, in a new file in the system's temp folder (the caller
        removes it): tensors over EXPORT_LOG_MAX_ELEMENTS (or ``max_elements``, when fewer) are
        written as their summary, step lines leave the tensors out once the log holds
        EXPORT_LOG_TENSOR_BYTES, and lines are flushed when the log is read (a flush every step
        would slow a small model's steps). ``lazy``: see :attr:`lazy`, for an owner that writes the
        records while it has nothing else to do. Raises OSError when the temp folder is not writable.
        """
        fd, name = tempfile.mkstemp(prefix=prefix, suffix=".jsonl")
        os.close(fd)
        return cls(name, min(max_elements, EXPORT_LOG_MAX_ELEMENTS), flush_each=False,
                   tensor_bytes=EXPORT_LOG_TENSOR_BYTES, label=f"the log that e exports ({name})", lazy=lazy)

    @property
    def pending(self) -> int:
        """Step records kept (a lazy trace) and not yet turned into lines."""
        return len(self._records)

    def write_pending(self, most: int | None = None) -> None:
        """Turn the oldest ``most`` kept step records (None: all) into lines, in order."""
        records = self._records
        if not records:
            return
        n = len(records) if most is None else min(most, len(records))
        taken, self._records = records[:n], records[n:]
        for record in taken:
            self._step_line(record)

    def _write(self, event: dict[str, Any]) -> None:
        if self._fd is None:
            return
        line = self._csv_line(event) if self.csv else self._json_line(event)
        if line is None:
            return
        data = line.encode("utf-8")
        self._waiting.append(data)
        self._waiting_bytes += len(data)
        self._bytes += len(data)
        if event.get("event") == "step":
            self._waiting_step = event["step"]
        if self.flush_each or self._waiting_bytes >= self.BUFFER_BYTES:
            self._write_waiting()

    @staticmethod
    def _json_line(event: dict[str, Any]) -> str:
        try:
            line = json.dumps(event, allow_nan=False)
        except ValueError:  # a NaN or an Inf: JSON has none, so they go as strings
            line = json.dumps(_finite(event), allow_nan=False)
        return line + "\n"

    def _csv_line(self, event: dict[str, Any]) -> str | None:
        """The CSV line of a step, after the header (at the first step, or at the end of a run of
        none); None for the other events, which a CSV trace leaves out."""
        kind = event.get("event")
        if kind == "start":
            self._start = event
        if kind not in ("step", "end") or (kind == "end" and self._columns is not None):
            return None
        out = io.StringIO()
        writer = csv.writer(out)
        if self._columns is None:
            self._columns = csv_columns([event if kind == "step" else (self._start or {})])
            writer.writerow(csv_header(*self._columns))
        if kind == "step":
            writer.writerow(csv_row(event, *self._columns))
        return out.getvalue()

    def flush(self) -> None:
        """Every line written so far to the file, for a reader (kept step records too)."""
        self.write_pending()
        self._write_waiting()

    def _write_waiting(self) -> None:
        """The lines waiting in memory to the file (not the kept records: a batch of them being
        turned into lines may pass BUFFER_BYTES, and the rest must follow it, in order)."""
        if self._fd is None or not self._waiting:
            return
        data = b"".join(self._waiting)
        self._waiting.clear()
        self._waiting_bytes = 0
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view):]
        except OSError as exc:
            self._fail(exc)
            return
        self._written += len(data)
        self._last_step = self._waiting_step if self._waiting_step is not None else self._last_step

    def take_error(self) -> str | None:
        """:attr:`error`, the first time it is asked for; then None (it was reported)."""
        if self.error is None or self._error_taken:
            return None
        self._error_taken = True
        return self.error

    def _fail(self, exc: OSError) -> None:
        """A write failed: cut a regular file back to its last whole line and write no more."""
        if self._regular:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._written)
        with contextlib.suppress(OSError):
            os.close(self._fd)
        self._fd = None
        reason = exc.strerror or str(exc)
        after = "before its first step" if self._last_step is None else f"after step {self._last_step}"
        advice = _WRITE_ADVICE.get(exc.errno, "choose another path")
        self.error = f"{self.label}: cannot write it ({reason}); the trace ends {after}, on a whole line; {advice}"

    def _tensor(self, view: TensorView | None) -> Any:
        return None if view is None else view.to_json(self.max_elements)

    def start(self, *, scenario: str, seed: int, device: str, mode: str, params: dict[str, TensorView]) -> None:
        self.write_pending()
        self._write(
            {
                "event": "start",
                "scenario": scenario,
                "seed": seed,
                "device": device,
                "mode": mode,
                "params": {k: self._tensor(v) for k, v in params.items()},
                "gdtui": __version__,
                "torch": torch.__version__,
            }
        )

    def step(self, r: StepRecord) -> None:
        if self.lazy:
            self._records.append(r)
            if len(self._records) >= self.LAZY_RECORDS:
                self.write_pending()
            return
        self._step_line(r)

    def _step_line(self, r: StepRecord) -> None:
        event: dict[str, Any] = {
            "event": "step",
            "step": r.step,
            "epoch": r.epoch,
            "batch": r.batch,
            "mode": r.mode,
            "grad_source": r.grad_source,
            "lr": r.lr,
            "loss": r.loss,
        }
        if self.tensor_bytes is None or self._bytes < self.tensor_bytes:
            event["params"] = {k: self._tensor(v) for k, v in r.params.items()}
            event["grads"] = {k: self._tensor(v) for k, v in r.grads.items()}
        elif self.tensors_left_out_from is None:
            self.tensors_left_out_from = r.step
        event["metrics"] = dict(r.metrics)
        if r.optimizer is not None:
            event["optimizer"] = r.optimizer
        if r.skipped:
            event["skipped"] = True
            event["scale"] = r.scale
        if r.clip_norm is not None:
            event["clip_norm"] = {"before": r.clip_norm[0], "max_norm": r.clip_norm[1]}
        if r.origin is not None:
            event["origin"] = r.origin
        self._write(event)

    def optimizer(self, index: int, kind: str, groups: list[dict[str, Any]]) -> None:
        """An attached script's optimizer stepped for the first time: its class and every param
        group's hyper-parameters (numbers, strings and booleans; tensors as their value)."""
        self.write_pending()
        self._write({"event": "optimizer", "optimizer": index, "class": kind, "param_groups": groups})

    def rewind(self, step: int) -> None:
        """The timeline goes back to just after ``step``: later step lines no longer count."""
        self.write_pending()
        self._write({"event": "rewind", "step": step})

    def reset(self) -> None:
        """The scenario was loaded again: a new start line follows, and no earlier step counts."""
        self.write_pending()
        self._write({"event": "reset"})

    def end(self, steps: int, reason: str, message: str | None = None, origin: str | None = None) -> None:
        """The run's last line; ``origin``: where a NaN/Inf it stopped for began (StepRecord.origin)."""
        self.write_pending()
        event: dict[str, Any] = {"event": "end", "steps": steps, "reason": reason}
        if message:
            event["message"] = message
        if origin:
            event["origin"] = origin
        self._write(event)

    def close(self) -> None:
        """Write what waits, and close the file (a failed write sets :attr:`error`)."""
        self.flush()
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def __enter__(self) -> TraceWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
