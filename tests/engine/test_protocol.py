"""Issue 13: the trainer protocol's codec: records and messages round-trip exactly, never pickled."""

from __future__ import annotations

import dataclasses
import math
import struct
import subprocess
import sys
from collections.abc import Mapping

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gdtui import protocol as p
from gdtui.engine.chart_records import ChartFrame, Histogram, LossLandscape, LossSeries, ModelFit
from gdtui.engine.records import DeadUnits, Hint, SessionState, ShownGrads, StepRecord, TensorView, frozen_map

floats = st.floats(allow_nan=True, allow_infinity=True)
names = st.text(min_size=1, max_size=8)
shapes = st.lists(st.integers(0, 3), max_size=3).map(tuple)
stats = st.tuples(floats, floats, floats, floats, floats, st.integers(0, 9), st.integers(0, 9))


@st.composite
def views(draw):
    shape = draw(shapes)
    n = math.prod(shape)
    flat = draw(st.one_of(st.none(), st.lists(floats, min_size=n, max_size=n))) if n else None
    return TensorView(shape, draw(st.sampled_from(["float32", "float64"])), flat,
                      draw(stats) if flat is None else draw(st.one_of(st.none(), stats)), draw(st.booleans()))


hints = st.builds(Hint, st.sampled_from(["dead_relu", "vanishing"]), st.text(max_size=20), st.one_of(st.none(), names))
dead = st.builds(DeadUnits, names, st.lists(st.integers(0, 9), max_size=3).map(tuple), st.integers(0, 9),
                 st.integers(0, 9), st.lists(st.integers(0, 9), max_size=3).map(tuple))
view_maps = st.dictionaries(names, views(), max_size=3).map(frozen_map)


@st.composite
def records(draw):
    return StepRecord(
        step=draw(st.integers(0, 10**6)), epoch=draw(st.one_of(st.none(), st.integers(0, 9))), batch=None,
        mode=draw(st.sampled_from(["manual", "optim"])), grad_source="autograd", lr=draw(floats), loss=draw(floats),
        params=draw(view_maps), grads=draw(st.dictionaries(names, st.one_of(st.none(), views()), max_size=3).map(frozen_map)),
        updates=draw(view_maps), metrics=draw(st.dictionaries(names, floats, max_size=2).map(frozen_map)),
        nonfinite=draw(st.one_of(st.none(), names)), zero_grad=draw(st.booleans()),
        dead_units=tuple(draw(st.lists(dead, max_size=2))),
        unchanged=draw(st.dictionaries(names, st.integers(0, 9), max_size=2).map(frozen_map)),
        hints=tuple(draw(st.lists(hints, max_size=2))), light=draw(st.booleans()), hints_whole=draw(st.booleans()),
    )


@st.composite
def states(draw):
    return SessionState(
        title=draw(st.text(max_size=10)), path="s.py", device="cpu", step=draw(st.integers(0, 99)),
        next_phase="forward", epoch=None, batch=None, mode="optim", grad_source="autograd", lr=draw(floats),
        loss=draw(st.one_of(st.none(), floats)), params=draw(view_maps), grads=draw(view_maps),
        last=draw(st.one_of(st.none(), records())), rewind_depth=3, history_note=None, has_grad_fn=False,
        shown_grads=ShownGrads(draw(st.dictionaries(names, st.one_of(st.none(), views()), max_size=3).map(frozen_map)),
                               draw(st.integers(0, 99)), draw(st.booleans()),
                               draw(st.one_of(st.none(), st.sampled_from(["forward", "backward"])))),
        notes=tuple(draw(st.lists(st.text(max_size=5), max_size=2))), hints=tuple(draw(st.lists(hints, max_size=1))),
        conditions=("loss < 0.1",),
    )


points = st.tuples(st.lists(floats, max_size=3).map(tuple), st.lists(floats, max_size=3).map(tuple))
charts = st.one_of(
    st.builds(LossSeries, st.lists(st.integers(1, 9), max_size=4).map(tuple), st.lists(floats, max_size=4).map(tuple),
              st.integers(0, 9)),
    st.builds(ModelFit, st.sampled_from(["curve", "boundary"]), points, points, points, floats),
    st.builds(LossLandscape, st.tuples(names), st.tuples(st.lists(floats, max_size=3).map(tuple)),
              st.lists(floats, max_size=3).map(tuple), st.lists(st.tuples(floats, points), max_size=2).map(tuple),
              st.lists(st.tuples(floats), max_size=2).map(tuple)),
)


def same(a, b) -> bool:
    """Equal value for value and type for type; floats bit for bit (NaN equals NaN, -0.0 is not 0.0)."""
    if type(a) is not type(b) and not (isinstance(a, Mapping) and isinstance(b, Mapping)):
        return False
    if isinstance(a, float):
        return struct.pack("<d", a) == struct.pack("<d", b) or (math.isnan(a) and math.isnan(b))
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, Mapping):
        return type(b).__name__ == "mappingproxy" and list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if dataclasses.is_dataclass(a):
        return all(same(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a))
    return a == b


@given(records())
def test_a_step_record_round_trips_exactly(record):
    """Issue 13: a StepRecord (NaN, Inf, -0.0, nested views, hints) comes back bit for bit, through one line."""
    back = p.loads(p.dumps(p.Stepped(record)))
    assert isinstance(back, p.Stepped) and same(record, back.record)


@given(states(), st.one_of(st.none(), charts.map(lambda c: ChartFrame("loss", c, 3))))
def test_a_frame_round_trips_exactly(state, chart):
    """Issue 13: a Frame's SessionState and ChartFrame (each chart record) come back bit for bit."""
    back = p.loads(p.dumps(p.Frame(state, chart, final=False, steps_per_s=1.5)))
    assert same(p.Frame(state, chart, final=False, steps_per_s=1.5), back)


@given(st.builds(Histogram, floats, floats, st.lists(st.integers(0, 99), max_size=4).map(tuple), st.integers(0, 9)),
       st.one_of(st.none(), views()))
def test_detail_data_round_trips_exactly(hist, grad):
    """Issue 13: a DetailData's views and histogram come back bit for bit."""
    message = p.DetailData("w", TensorView((1,), "float32", [0.1]), grad, hist, None)
    assert same(message, p.loads(p.dumps(message)))


def test_every_command_and_event_round_trips():
    """Issue 13: each message type builds from its own line; a line is one line of ASCII JSON."""
    samples = [p.Attach(p.PROTOCOL_VERSION, "0.1.0", 1, "x"), p.Step(3), p.Phase(), p.Run(None), p.Run(5), p.Pause(),
               p.Rewind(2), p.Reset(), p.SetControls(mode="manual", lr=0.25, conditions=("loss < 1",)), p.GradientCheck(),
               p.Compare(), p.OptimizerState(), p.Hints(), p.Detail("w"), p.Chart("fit", 80), p.Export("o.jsonl"),
               p.Interrupt(), p.Quit(), p.Hello(p.PROTOCOL_VERSION, "0.1.0", 2, "s.py", 4), p.Refused("busy"),
               p.Status(), p.Attached(), p.Attached(4, "half a line \xff\x1b]57"), p.OutputSync(3),
               p.Hello(p.PROTOCOL_VERSION, "0.1.0", 2, "s.py", 4, 1.5e9, "pid 3 (x), attached at 12:00:00", None, 1800.0, True),
               p.LoadFailed("s.py:3: bad"), p.Stopped("paused"), p.Output(((1, "héllo \udcff"), (2, ""))),
               p.Error("e", "step"), p.Report("compare", ("a", "b"), False), p.Exited(0),
               p.SetControls(lr_scale=0.5), p.Controls("manual", "autograd", 0.5, ("n",), True, ("loss < 1",), ("loss < 1",)),
               p.Progress(7, 62, "encoder.layers.0.linear1.weight"), p.Done("step")]
    assert {type(m) for m in samples} >= set(p.COMMANDS + p.EVENTS) - {p.Opened, p.Stepped, p.Frame, p.DetailData,
                                                                      p.ChartReady}
    for message in samples:
        line = p.dumps(message)
        assert line.endswith(b"\n") and line.count(b"\n") == 1 and line.isascii()
        assert p.loads(line) == message


def test_a_hello_of_another_version_is_one_clear_error():
    """Issue 13: a hello of another protocol version raises VersionMismatch naming both versions."""
    with pytest.raises(p.VersionMismatch, match=rf"protocol 99 and this gdtui .* speaks {p.PROTOCOL_VERSION}"):
        p.loads(b'{"type":"hello","protocol":99,"anything":"else"}')


@pytest.mark.parametrize("line", [b"not json", b"[1]", b'{"type":"unknown"}', b'{"type":"stepped","record":{"$r":"Popen"}}',
                                  b'{"type":"step","n":{"$f":"huge"}}', b'{"type":"step","n":{"x":1}}'])
def test_a_bad_line_is_a_protocol_error(line):
    """Issue 13: a line that is not this protocol's is a ProtocolError, and no other type is ever built."""
    with pytest.raises(p.ProtocolError):
        p.loads(line)


def test_only_messages_and_records_are_sent():
    """Issue 13: an object that is not a record of the protocol is refused, not pickled."""
    with pytest.raises(p.ProtocolError):
        p.dumps(p.Report("x", (object(),)))


def test_the_protocol_and_the_client_import_no_torch():
    """Issue 13: importing gdtui.protocol and gdtui.client in a fresh interpreter leaves torch and textual out."""
    code = ("import sys, gdtui.protocol, gdtui.client\n"
            "print(','.join(m for m in ('torch', 'numpy', 'textual') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_output_marks_cut_by_a_read_keep_the_line_before_them():
    """Issue 13: the trainer's output read in pieces (by the trainer or by its client): a step mark cut in two
    by a read, after half a line, loses neither that text nor the step of what follows."""
    from gdtui.marked_output import MARK, MarkedLines

    stream = b"loading\n" + MARK % 1 + b"abc" + MARK % 2 + b"def\nghi\n" + MARK % -1
    for cut in range(len(stream) + 1):
        lines = MarkedLines()
        first, _ = lines.feed(stream[:cut])
        second, _ = lines.feed(stream[cut:])
        rest, _ = lines.feed(b"", final=True)
        assert first + second + rest == [(0, "loading"), (1, "abc"), (2, "def"), (2, "ghi")], cut
