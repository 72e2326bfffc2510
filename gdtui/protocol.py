"""The trainer protocol: commands from a screen to a trainer process, events back.

One message is one line of JSON (UTF-8, ASCII-escaped) ending in ``\\n``, over any byte stream: a
Unix socket, a pipe, a socketpair. The trainer speaks first, with a :class:`Hello` that carries
PROTOCOL_VERSION; the client answers with :class:`Attach`, which carries its own. A client and a
trainer of different versions stop there, with one clear line (:class:`VersionMismatch`).

Messages carry gdtui's frozen records (StepRecord, SessionState, TensorView, the chart records),
never tensors, and never pickle: :func:`encode` turns a record into plain JSON values and
:func:`decode` builds it again, equal field for field. Floats are exact (JSON writes a Python
float's shortest repr, which reads back to the same bits); NaN, Inf and -Inf, which JSON has no
number for, are written ``{"$f": "nan"}``. Tuples and read-only mappings are tagged, so a decoded
record has the types the engine built. Only the record types named here are ever built from a
message.

docs/protocol.md describes the messages. This module imports no torch and no textual.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gdtui import __version__
from gdtui.engine.chart_records import ChartFrame, Histogram, LossLandscape, LossSeries, ModelFit
from gdtui.engine.records import DeadUnits, Hint, SessionState, ShownGrads, StepRecord, TensorView, frozen_map

#: Raised when a message changes meaning: a field added is not a change (readers ignore unknown
#: fields and new fields have defaults); a field removed or renamed, a record changed, a new message
#: type or a change in who speaks when, is. 2: the hello comes first on every connection and says
#: the trainer's status; a client answers it with ``attach`` (acknowledged by ``attached``) or ``status``.
#: 3: every queued command ends with ``done``; ``set_controls`` acts at once and is answered with
#: ``controls``; a reset's ``opened`` is followed by a ``frame``. 5: the attached client reads the
#: trainer's pseudo-terminal itself (``attached`` hands it over; ``output_sync`` orders it).
#: 6: a SessionState carries ``shown_grads``, the gradient the screen shows, which the screen no
#: longer decides from ``grads`` and ``last``; ``detail_data`` says which gradient it is (``grad_of``).
PROTOCOL_VERSION = 6

#: The longest line a reader accepts: a frame of a large model is a few MB; more is a broken peer.
MAX_LINE = 256 * 2**20


class ProtocolError(Exception):
    """A message that is not one of this protocol's, told in one line."""


class VersionMismatch(ProtocolError):
    """The other side speaks another version of the protocol."""

    def __init__(self, theirs: object, who: str):
        self.theirs = theirs
        super().__init__(
            f"the {who} speaks gdtui protocol {theirs!r} and this gdtui ({__version__}) speaks "
            f"{PROTOCOL_VERSION}: run the same gdtui on both sides"
        )


# --- records <-> plain values -------------------------------------------------------------

_RECORDS: dict[str, type] = {
    cls.__name__: cls
    for cls in (StepRecord, SessionState, ShownGrads, TensorView, Hint, DeadUnits, ChartFrame, Histogram, LossSeries, ModelFit, LossLandscape)
}
_FLOATS = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def _float(x: float) -> Any:
    if math.isfinite(x):
        return x
    return {"$f": "nan" if x != x else ("inf" if x > 0 else "-inf")}


def _finite_numbers(values: list | tuple) -> bool:
    """True when ``values`` holds only finite numbers, which JSON writes as they are (and ``encode``
    would leave as they are). One pass in C (fsum), not a call a value: a frame may carry thousands."""
    try:
        return math.isfinite(math.fsum(values))
    except (TypeError, ValueError, OverflowError):  # not numbers; inf - inf; an overflow
        return False


def encode(value: Any) -> Any:
    """``value`` as JSON values: records, tuples, mappings, lists, str, int, float, bool, None."""
    if value is None or value is True or value is False or isinstance(value, (str, int)):
        return value
    if isinstance(value, float):
        return _float(value)
    if isinstance(value, list):
        return value if _finite_numbers(value) else [encode(v) for v in value]
    if isinstance(value, tuple):
        return {"$t": list(value) if _finite_numbers(value) else [encode(v) for v in value]}
    if isinstance(value, Mapping):
        return {"$m": {str(k): encode(v) for k, v in value.items()}}
    cls = type(value)
    if cls.__name__ in _RECORDS and _RECORDS[cls.__name__] is cls:
        # Only the dataclass fields: a TensorView's values and statistics computed on first use are not sent.
        return {"$r": cls.__name__, "f": {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(cls)}}
    raise ProtocolError(f"cannot send a {cls.__name__} in a message")


#: A tensor of more elements than this crosses to a screen as its statistics (a frame, a stop): the
#: table shows at most 8 values, and every value of one tensor comes on request (``detail``).
SCREEN_VALUES = 64


def for_screen(record: Any) -> Any:
    """``record`` (a SessionState or a StepRecord) with each TensorView of more than SCREEN_VALUES
    elements replaced by its statistics; the same numbers a screen shows, at a fraction of the bytes."""
    if isinstance(record, SessionState):
        shown = record.shown_grads
        if record.last is not None and shown.views is record.last.grads:
            shown_views = None  # the last record's gradients: summarised once, with the record
        else:
            shown_views = _views(shown.views)
        last = for_screen(record.last)
        shown = dataclasses.replace(shown, views=last.grads if shown_views is None else shown_views)
        return dataclasses.replace(record, params=_views(record.params), grads=_views(record.grads),
                                   last=last, shown_grads=shown)
    if isinstance(record, StepRecord):
        return dataclasses.replace(record, params=_views(record.params), grads=_views(record.grads),
                                   updates=_views(record.updates))
    return record


def _views(views: Mapping[str, TensorView | None]) -> Mapping[str, TensorView | None]:
    if not any(v is not None and v.flat is not None and v.numel > SCREEN_VALUES for v in views.values()):
        return views
    return frozen_map({name: _summary(v) for name, v in views.items()})


def _summary(view: TensorView | None) -> TensorView | None:
    if view is None or view.flat is None or view.numel <= SCREEN_VALUES:
        return view
    return TensorView(view.shape, view.dtype, None, tuple(view._stats), view.norm_only)


def decode(value: Any) -> Any:
    """The value :func:`encode` was given, from its JSON values."""
    if isinstance(value, list):
        return [decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "$f" in value:
        try:
            return _FLOATS[value["$f"]]
        except (KeyError, TypeError):
            raise ProtocolError(f"{value['$f']!r} is not a float this protocol writes") from None
    if "$t" in value:
        return tuple(decode(v) for v in value["$t"])
    if "$m" in value:
        return frozen_map({k: decode(v) for k, v in value["$m"].items()})
    if "$r" in value:
        cls = _RECORDS.get(value["$r"])
        if cls is None:
            raise ProtocolError(f"{value['$r']!r} is not a record this protocol carries")
        known = {f.name for f in dataclasses.fields(cls)}
        fields = {k: decode(v) for k, v in value.get("f", {}).items() if k in known}
        try:
            return cls(**fields)
        except (TypeError, ValueError) as exc:
            raise ProtocolError(f"a {cls.__name__} that does not build: {exc}") from None
    raise ProtocolError(f"an object with keys {sorted(value)[:4]} is not a value this protocol writes")


# --- messages ---------------------------------------------------------------------------

_MESSAGES: dict[str, type] = {}


def _message(name: str):
    """Register a frozen dataclass as the message ``name`` (its ``type`` on the wire)."""

    def register(cls):
        cls = dataclass(frozen=True)(cls)
        cls.TYPE = name
        _MESSAGES[name] = cls
        return cls

    return register


# Commands: client -> trainer.


@_message("attach")
class Attach:
    """The client's answer to Hello: its protocol version, and who it is (named to a second client)."""

    protocol: int
    gdtui_version: str
    pid: int
    name: str = ""


@_message("status")
class Status:
    """The other answer to Hello: the hello (the trainer's status) was all this client wanted; the
    trainer closes the connection, and nothing attached or paused."""


@_message("step")
class Step:
    """Run ``n`` whole steps (each finishes the step in progress first)."""

    n: int = 1
    #: Send a ``stepped`` for each step; a screen, which shows the final ``frame`` only, says False.
    records: bool = True


@_message("phase")
class Phase:
    """Run the next phase of the step in progress."""


@_message("run")
class Run:
    """Step until Pause, a failed step, a NaN/Inf, a stop condition, or ``limit`` steps."""

    limit: int | None = None


@_message("pause")
class Pause:
    """Stop a run after the step in progress (handled at once, not queued)."""


@_message("rewind")
class Rewind:
    n: int = 1


@_message("reset")
class Reset:
    """Load the scenario again (also: try again after it failed to load)."""


@_message("set_controls")
class SetControls:
    """Change the controls; a field left None stays as it is. ``lr`` sets every param group's
    learning rate; ``lr_scale`` multiplies each (the +/- keys: the groups keep their ratios).
    ``conditions`` replaces the stop conditions, as Session.condition_texts gives them: one in
    force keeps its kind (an --until stays the goal), "loss rose K steps in a row" is the
    built-in one, any other is a breakpoint; all or nothing."""

    mode: str | None = None
    grad_source: str | None = None
    lr: float | None = None
    skip_zero_grad: bool | None = None
    conditions: tuple[str, ...] | None = None
    lr_scale: float | None = None


@_message("gradient_check")
class GradientCheck:
    pass


@_message("compare")
class Compare:
    pass


@_message("optimizer_state")
class OptimizerState:
    pass


@_message("hints")
class Hints:
    """The last step made whole (see Session.detail_last), and its health hints."""


@_message("detail")
class Detail:
    """One tensor: its value and gradient views, and histograms when it is too large to list."""

    name: str


@_message("chart")
class Chart:
    """The chart of ``view`` ("loss", "fit", "landscape") for a chart ``width`` columns wide;
    later frames use them too."""

    view: str = "loss"
    width: int = 60


@_message("export")
class Export:
    path: str


@_message("interrupt")
class Interrupt:
    """Stop the step in progress: the trainer raises SIGINT in its main thread (the user's code gets
    KeyboardInterrupt) and rolls the step back. Does nothing between steps. Handled at once."""


@_message("quit")
class Quit:
    """End the trainer."""


# Events: trainer -> client.


@_message("hello")
class Hello:
    """The trainer's first message on every connection, and its status: a listing of trainers reads
    it and answers Status."""

    protocol: int
    gdtui_version: str
    pid: int
    scenario: str
    step: int = 0
    #: When the trainer started (seconds since the epoch).
    started: float = 0.0
    #: The attached client ("pid 123 (name), attached at 12:04:05") or None.
    client: str | None = None
    #: Since when no client is attached (seconds since the epoch), or None while one is.
    alone_since: float | None = None
    #: Seconds alone after which it ends; None: it waits forever (--listen, --detach-timeout 0).
    detach_timeout_s: float | None = None
    #: A trainer started with gdtui --listen (q on its screen asks before ending it).
    listening: bool = False


@_message("attached")
class Attached:
    """The answer to Attach when it is taken: this connection is the trainer's client now, and it
    reads the trainer's output itself, from the copy of the pseudo-terminal that came with the
    hello. ``step``: the step of the output that follows; ``partial``: the bytes of a line the
    trainer had begun to read (latin-1, so any byte goes through)."""

    step: int = 0
    partial: str = ""


@_message("refused")
class Refused:
    """The answer to Attach when another client is attached (the reason names it), when the versions
    differ, or when the trainer is ending; the trainer closes this connection."""

    reason: str


@_message("opened")
class Opened:
    """The scenario loaded (or loaded again), or a client attached to a loaded one: what to show.
    ``trace`` is the trainer's trace log (which an export must not overwrite), or None."""

    state: SessionState
    views: tuple[str, ...] = ("loss",)
    warning: str | None = None
    trace: str | None = None


@_message("load_failed")
class LoadFailed:
    """The scenario did not load; Reset tries again."""

    error: str


@_message("stepped")
class Stepped:
    """A step finished."""

    record: StepRecord


@_message("frame")
class Frame:
    """What the screen shows now, after a command or during a run."""

    state: SessionState
    chart: ChartFrame | None = None
    final: bool = True
    steps_per_s: float | None = None
    #: A one-line remark: nothing to rewind, a replay that ran differently.
    notice: str | None = None


@_message("stopped")
class Stopped:
    """A run or a series of steps ended: ``reason`` is limit, paused, nonfinite, condition,
    error or interrupted."""

    reason: str
    record: StepRecord | None = None
    message: str | None = None


@_message("output")
class Output:
    """Lines the trainer's process wrote to its fds 1 and 2, marked with the step in progress
    when they were written (0: while the scenario loaded)."""

    lines: tuple[tuple[int, str], ...]


@_message("output_sync")
class OutputSync:
    """The trainer wrote sync mark ``n`` into its output: a client that reads the output reads up to
    that mark (a second at most) before it takes the next event, so a command's output comes
    before its last event."""

    n: int


@_message("error")
class Error:
    """A command failed (a StepError, a bad value): one line; the session stays usable."""

    message: str
    command: str | None = None


@_message("report")
class Report:
    """A diagnostic's lines: gradient_check, compare, optimizer_state, hints or export."""

    kind: str
    lines: tuple[str, ...]
    ok: bool = True


@_message("detail_data")
class DetailData:
    name: str
    value: TensorView
    grad: TensorView | None
    value_hist: Histogram | None = None
    grad_hist: Histogram | None = None
    #: Which gradient ``grad`` is: SessionState.shown_grads's label.
    grad_of: str = ""


@_message("chart_frame")
class ChartReady:
    frame: ChartFrame


@_message("controls")
class Controls:
    """The answer to set_controls (after its error, if one could not be set): the controls in
    force, which apply from the next step (see SessionState for the fields)."""

    mode: str
    grad_source: str
    lr: float
    notes: tuple[str, ...] = ()
    skip_zero_grad: bool = False
    conditions: tuple[str, ...] = ()
    until: tuple[str, ...] = ()


@_message("progress")
class Progress:
    """A gradient check in progress: it is checking tensor ``done`` of ``total``, ``name``.
    An interrupt during a check cancels it between two evaluations (Stopped "interrupted")."""

    done: int
    total: int
    name: str


@_message("done")
class Done:
    """The last event of every queued command (all but pause, interrupt, set_controls and quit):
    ``command`` is its type."""

    command: str


@_message("exited")
class Exited:
    """The trainer is ending (Quit): the last message of the connection. A trainer that dies
    sends none; the client reports its exit status or signal (see gdtui.client.Ended)."""

    status: int = 0


COMMANDS = (Attach, Status, Step, Phase, Run, Pause, Rewind, Reset, SetControls, GradientCheck, Compare, OptimizerState,
            Hints, Detail, Chart, Export, Interrupt, Quit)
EVENTS = (Hello, Attached, Refused, Opened, LoadFailed, Stepped, Frame, Stopped, Output, OutputSync, Error, Report,
          DetailData, ChartReady, Controls, Progress, Done, Exited)


def dumps(message: Any) -> bytes:
    """One message as its line, ``\\n`` included."""
    cls = type(message)
    if _MESSAGES.get(getattr(cls, "TYPE", None)) is not cls:
        raise ProtocolError(f"a {cls.__name__} is not a message of this protocol")
    body = {"type": cls.TYPE}
    for f in dataclasses.fields(cls):
        body[f.name] = encode(getattr(message, f.name))
    return json.dumps(body, allow_nan=False, separators=(",", ":")).encode("ascii") + b"\n"


def loads(line: bytes | str) -> Any:
    """The message of one line. A Hello or Attach of another protocol version raises
    VersionMismatch before anything else of the line is read."""
    try:
        body = json.loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"a line that is not JSON: {str(exc)[:80]}") from None
    if not isinstance(body, dict) or not isinstance(body.get("type"), str):
        raise ProtocolError("a message with no type")
    kind = body.pop("type")
    if kind in ("hello", "attach") and body.get("protocol") != PROTOCOL_VERSION:
        raise VersionMismatch(body.get("protocol"), "trainer" if kind == "hello" else "client")
    cls = _MESSAGES.get(kind)
    if cls is None:
        raise ProtocolError(f"{kind!r} is not a message of gdtui protocol {PROTOCOL_VERSION}")
    known = {f.name for f in dataclasses.fields(cls)}
    try:
        return cls(**{k: decode(v) for k, v in body.items() if k in known})
    except TypeError as exc:
        raise ProtocolError(f"a {kind} message that does not build: {exc}") from None


class LineReader:
    """Messages from a socket or a file descriptor, one line at a time, with no buffering past
    what has arrived. ``read()`` returns None at the end of the stream."""

    def __init__(self, recv):
        self._recv = recv  # a function of a byte count, returning b"" at the end
        self._buffer = bytearray()

    def feed(self, chunk: bytes) -> None:
        """Bytes received elsewhere (after a select): ``buffered`` takes the messages in them."""
        self._buffer += chunk
        if len(self._buffer) > MAX_LINE and self._buffer.find(b"\n") < 0:
            raise ProtocolError(f"a message longer than {MAX_LINE // 2**20} MB")

    def buffered(self) -> Any | None:
        """The next message of what has arrived, or None when no whole line is there yet."""
        end = self._buffer.find(b"\n")
        if end < 0:
            return None
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 1]
        return loads(line)

    def read(self) -> Any | None:
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0:
                line = bytes(self._buffer[:end])
                del self._buffer[: end + 1]
                return loads(line)
            if len(self._buffer) > MAX_LINE:
                raise ProtocolError(f"a message longer than {MAX_LINE // 2**20} MB")
            chunk = self._recv(1 << 16)
            if not chunk:
                if self._buffer:
                    raise ProtocolError("the stream ended inside a message")
                return None
            self._buffer += chunk


# --- where sockets live ---------------------------------------------------------------------


def socket_dir() -> str:
    """The folder for trainers' sockets: $XDG_RUNTIME_DIR/gdtui, else gdtui-$UID in the temp
    folder; made with mode 0700. Raises ProtocolError (one line) when it is someone else's or
    others can read it."""
    import os
    import stat
    import tempfile

    runtime = os.environ.get("XDG_RUNTIME_DIR")
    path = os.path.join(runtime, "gdtui") if runtime and os.path.isdir(runtime) else os.path.join(
        tempfile.gettempdir(), f"gdtui-{os.getuid()}")
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise ProtocolError(f"{path}: not a folder of yours that only you can read (mode 0700); remove it or "
                            "set XDG_RUNTIME_DIR")
    return path


__all__ = [
    "COMMANDS",
    "EVENTS",
    "PROTOCOL_VERSION",
    "LineReader",
    "ProtocolError",
    "VersionMismatch",
    "decode",
    "dumps",
    "encode",
    "loads",
    "socket_dir",
]
