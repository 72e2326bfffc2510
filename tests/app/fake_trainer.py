"""A trainer of hand-made events, for testing the screen without torch (like memray's MockApp).

:class:`FakeTrainer` stands where gdtui.client.TrainerClient stands: the app's own port
(gdtui.client_port.ClientPort) sends it the screen's commands and reads its events, so a test runs
everything of the screen's process but the socket and the trainer process. The events are
gdtui.protocol's, and each one goes through the wire format (dumps, then loads) before the port
reads it, as it would from a trainer. The numbers in them are the test's own, not gdtui's.

A plain helper module (not a test module): tests import it as ``tests.app.fake_trainer``. It
imports no torch, nor anything that does.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable

from gdtui import protocol as p
from gdtui.app import GdtuiApp
from gdtui.client import Ended
from gdtui.client_port import ClientPort
from gdtui.engine.records import SessionState, StepRecord, TensorView, frozen_map, shown_grads

#: The commands that act at once: a trainer answers them with no Done.
AT_ONCE = (p.Pause, p.Interrupt, p.SetControls)


def tensor(*values: float) -> TensorView:
    return TensorView((len(values),), "torch.float32", list(values))


def state(step: int = 0, *, loss: float | None = None, params: dict[str, list[float]] | None = None,
          grads: dict[str, list[float]] | None = None, **fields) -> SessionState:
    """A hand-made SessionState: ``params`` and ``grads`` by tensor name; the step's record when
    ``step`` is past 0; the gradient to show as the engine chooses it (unless ``shown_grads`` is given)."""
    params = params if params is not None else {"w": [1.5]}
    shown = frozen_map({name: tensor(*values) for name, values in params.items()})
    grad_views = frozen_map({name: tensor(*grads[name]) if grads and name in grads else None for name in params})
    last = None
    if step:
        last = StepRecord(step, None, None, "optim", "autograd", 0.25, loss, shown,
                          frozen_map({name: view or tensor(*[0.0] * len(params[name])) for name, view in grad_views.items()}),
                          shown)
    values = dict(title="hand-made", path="hand_made.py", device="cpu", step=step, next_phase="forward",
                  epoch=None, batch=None, mode="optim", grad_source="autograd", lr=0.25, loss=loss,
                  params=shown, grads=grad_views, last=last, rewind_depth=step, history_note=None,
                  has_grad_fn=False, metric_names=(), file="/nowhere/hand_made.py")
    values.update(fields)
    values.setdefault("shown_grads", shown_grads(step, values["next_phase"], values["grads"], values["last"]))
    return SessionState(**values)


def wire(event: object) -> object:
    """``event`` as a trainer's socket would deliver it: written as its line, then read back."""
    return p.loads(p.dumps(event))


#: What a fake trainer answers a command with: its events, before the Done that a queued command
#: gets (an answer of None: no Done yet; the test sends it with ``emit``).
Answer = Callable[[object], Iterable[object] | None]


class FakeTrainer:
    """A trainer that has loaded ``opened`` and answers each command with ``answer(command)``.

    Every queued command ends with ``Done`` after its events, as a trainer's does, unless ``answer``
    returns None. ``emit`` sends events at any time (Output lines, a Progress); ``die`` ends it as a
    trainer killed by a signal or exited, with its last output lines.
    """

    def __init__(self, opened: SessionState, answer: Answer | None = None, *, pid: int = 4242):
        self.hello = p.Hello(p.PROTOCOL_VERSION, "0.0.0", pid, opened.path, step=opened.step)
        self.path = f"/nowhere/trainer-{pid}.sock"
        self.process = None  # as a trainer this screen connected to: q sends Quit and closes
        self.answer = answer or (lambda command: ())
        self.sent: list[object] = []
        self.closed = threading.Event()
        self.events: queue.Queue = queue.Queue()
        self.emit(p.Opened(opened))

    # --- what the port calls (gdtui.client.TrainerClient's) ------------------------------------

    def send(self, command: object) -> None:
        self.sent.append(command)
        if isinstance(command, p.Quit):
            self.events.put(Ended(0, None, ()))
            return
        events = self.answer(command)
        if events is None:
            return
        self.emit(*events)
        if not isinstance(command, AT_ONCE):
            self.emit(p.Done(type(command).TYPE))

    def next_event(self, timeout: float | None = None) -> object:
        return self.events.get(timeout=timeout)

    def detach(self) -> None:
        self.closed.set()
        self.events.put(Ended(None, None, ()))

    # --- what a test calls ------------------------------------------------------------------

    def emit(self, *events: object) -> None:
        for event in events:
            self.events.put(wire(event))

    def die(self, *, signal: int | None = None, status: int | None = None, last_lines: tuple[str, ...] = ()) -> None:
        """The trainer's process ended (a segfault, os._exit, a kill): the connection's last event."""
        self.events.put(Ended(status, signal, tuple(last_lines)))


class FakeTrainerPort(ClientPort):
    """The app's own port, on fake trainers: ``trainers`` gives the next one at each start (the
    first at the app's start, another at ``r`` after one died)."""

    def __init__(self, *trainers: FakeTrainer):
        super().__init__("hand_made.py")
        self.trainers = list(trainers)
        self.started: list[FakeTrainer] = []

    def open_client(self, name: str) -> FakeTrainer:
        trainer = self.trainers.pop(0)
        self.started.append(trainer)
        return trainer


def fake_app(*trainers: FakeTrainer) -> GdtuiApp:
    """The step-debugger on fake trainers, as gdtui.app.make_app builds it on real ones."""
    return GdtuiApp(FakeTrainerPort(*trainers), name="hand_made.py")


def answer_steps(start: SessionState, frames: dict[int, SessionState]) -> Answer:
    """Step(n) answers the Frame of the step it reaches, from ``frames`` (by step number); every other
    command answers nothing but its Done."""
    at = [start.step]

    def answer(command: object) -> Iterable[object]:
        if isinstance(command, p.Step):
            at[0] += command.n
            return (p.Frame(frames[at[0]]),)
        return ()

    return answer
