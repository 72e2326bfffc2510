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

import json
import math
import os
import tempfile
from pathlib import Path
from typing import IO, Any

import torch

from gdtui import __version__
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
#: every step, cost a 500-tensor model 120-350 ms and 2.6 MB a step; --trace keeps them.
EXPORT_LOG_MAX_ELEMENTS = 64
#: ...and once it holds this many bytes, its step lines leave the tensors out (step, loss, lr
#: and metrics stay), so a long run of a large model cannot fill the temp folder: a step of a
#: 500-tensor model wrote 245 kB, a step line without tensors about 200 bytes.
EXPORT_LOG_TENSOR_BYTES = 512 * 2**20


class TraceWriter:
    """Writes a trace to ``path``; a line per event, flushed at once unless ``flush_each`` is False
    (then :meth:`flush` before reading it)."""

    def __init__(self, path: str | Path, max_elements: int = 4096, flush_each: bool = True,
                 tensor_bytes: int | None = None):
        self.path = Path(path)
        self.max_elements = max_elements
        self.flush_each = flush_each
        #: Past this many bytes written, step lines carry no tensors (None: always).
        self.tensor_bytes = tensor_bytes
        #: The first step written without its tensors, once the log has reached ``tensor_bytes``.
        self.tensors_left_out_from: int | None = None
        self._bytes = 0
        self._file: IO[str] | None = open(self.path, "w", encoding="utf-8")  # noqa: SIM115 - closed by close()

    @classmethod
    def export_log(cls, max_elements: int, prefix: str = "gdtui-trace-") -> TraceWriter:
        """The step-debugger's own trace, in a new file in the system's temp folder (the caller
        removes it): tensors over EXPORT_LOG_MAX_ELEMENTS (or ``max_elements``, when fewer) are
        written as their summary, step lines leave the tensors out once the log holds
        EXPORT_LOG_TENSOR_BYTES, and lines are flushed when the log is read (a flush costs a
        step of not_gate about 2%). Raises OSError when the temp folder is not writable."""
        fd, name = tempfile.mkstemp(prefix=prefix, suffix=".jsonl")
        os.close(fd)
        return cls(name, min(max_elements, EXPORT_LOG_MAX_ELEMENTS), flush_each=False,
                   tensor_bytes=EXPORT_LOG_TENSOR_BYTES)

    def _write(self, event: dict[str, Any]) -> None:
        if self._file is None:
            return
        try:
            line = json.dumps(event, allow_nan=False)
        except ValueError:  # a NaN or an Inf: JSON has none, so they go as strings
            line = json.dumps(_finite(event), allow_nan=False)
        self._file.write(line + "\n")
        self._bytes += len(line) + 1
        if self.flush_each:
            self._file.flush()

    def flush(self) -> None:
        """Every line written so far to the file, for a reader."""
        if self._file is not None:
            self._file.flush()

    def _tensor(self, view: TensorView | None) -> Any:
        return None if view is None else view.to_json(self.max_elements)

    def start(self, *, scenario: str, seed: int, device: str, mode: str, params: dict[str, TensorView]) -> None:
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
        self._write(event)

    def rewind(self, step: int) -> None:
        """The timeline goes back to just after ``step``: later step lines no longer count."""
        self._write({"event": "rewind", "step": step})

    def reset(self) -> None:
        """The scenario was loaded again: a new start line follows, and no earlier step counts."""
        self._write({"event": "reset"})

    def end(self, steps: int, reason: str, message: str | None = None) -> None:
        event: dict[str, Any] = {"event": "end", "steps": steps, "reason": reason}
        if message:
            event["message"] = message
        self._write(event)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> TraceWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
