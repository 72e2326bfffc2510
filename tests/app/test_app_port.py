"""The screen on a fake trainer port: the commands its keys send, and the records it shows.

Like memray's MockApp, the port here posts hand-made records, so these tests need no
session and no torch on the screen's side: they pin the seam a trainer-process port
will plug into (gdtui.port). The numbers are the ones the test made, not gdtui's.
"""

from __future__ import annotations

from gdtui import protocol as p
from gdtui.app import GdtuiApp
from gdtui.client_port import Detached
from gdtui.engine.records import SessionState, StepRecord, TensorView, frozen_map, shown_grads
from gdtui.messages import CommandDone, CommandFailed, ControlsChanged, Frame, Opened
from gdtui.port import IMMEDIATE
from gdtui.widgets.breakpoint_screen import BreakpointScreen
from gdtui.widgets.error_panel import ErrorPanel
from gdtui.widgets.param_table import ParamTable
from gdtui.widgets.quit_prompt import QuitPrompt
from gdtui.widgets.status_line import StatusLine

SIZE = (80, 24)


def state(step: int = 0, loss: float | None = None, w: float = 1.5, **fields) -> SessionState:
    last = None
    if step:
        view = TensorView((1,), "torch.float32", [w])
        last = StepRecord(step, None, None, "optim", "autograd", 0.25, loss, frozen_map({"w": view}),
                          frozen_map({"w": TensorView((1,), "torch.float32", [0.5])}), frozen_map({"w": view}))
    values = dict(title="hand-made", path="hand_made.py", device="cpu", step=step, next_phase="forward",
                  epoch=None, batch=None, mode="optim", grad_source="autograd", lr=0.25, loss=loss,
                  params=frozen_map({"w": TensorView((1,), "torch.float32", [w])}),
                  grads=frozen_map({"w": None}), last=last, rewind_depth=step, history_note=None,
                  has_grad_fn=False, metric_names=("acc",), file="/nowhere/hand_made.py")
    values.update(fields)
    values.setdefault("shown_grads", shown_grads(step, values["next_phase"], values["grads"], values["last"]))
    return SessionState(**values)


class FakePort:
    """Answers each command with hand-made messages, as a trainer's events would be posted."""

    trace_path = None

    def __init__(self, opened: SessionState):
        self.opened = opened
        self.sent: list[object] = []
        self.closed = False
        self.app = None

    def bind(self, app) -> None:
        self.app = app

    def start(self) -> None:
        self.app.post_message(Opened(self.opened, ("loss",)))
        self.app.post_message(CommandDone(p.Reset()))

    def send(self, command: object) -> None:
        self.sent.append(command)
        post = self.app.post_message
        if isinstance(command, p.Quit):
            self.closed = True
        elif isinstance(command, p.SetControls) and command.lr_scale is None:
            post(ControlsChanged(command.mode or "optim", "autograd", 0.25, (), False,
                                 command.conditions or (), ()))
        elif isinstance(command, p.Step):
            if command.n == 2:
                post(CommandFailed("hand_made.py:3: the loss is a string"))
                post(Frame(state(1, 0.75)))
            else:
                post(Frame(state(command.n, 0.75, w=2.125)))
        if not isinstance(command, (*IMMEDIATE, p.Quit)):
            post(CommandDone(command))


async def settle(pilot) -> None:
    await pilot.pause()
    await pilot.pause()


def status(app) -> str:
    return str(app.query_one(StatusLine).render())


async def test_the_keys_send_the_protocols_commands_and_the_screen_shows_the_records():
    """Issue 13: the screen talks to the engine only through commands and shows only records: a
    port that posts hand-made records is all it needs."""
    port = FakePort(state())
    app = GdtuiApp(port, name="hand_made.py")
    async with app.run_test(size=SIZE) as pilot:
        await app.opened.wait()
        await settle(pilot)
        assert port.sent == [p.Chart("loss", port.sent[0].width)] and not app.busy
        await pilot.press("space")
        await settle(pilot)
        assert port.sent[-1] == p.Step(1) and not app.busy
        assert "step 1" in status(app) and "0.75" in status(app)
        table = app.query_one(ParamTable)
        assert "2.125" in " ".join(str(c) for c in table.get_row("w"))
        await pilot.press("m", "plus", "minus")
        await settle(pilot)
        assert port.sent[-3:] == [p.SetControls(mode="manual"), p.SetControls(lr_scale=2.0), p.SetControls(lr_scale=0.5)]
        assert app.state.mode == "manual"
        await pilot.press("b")
        await settle(pilot)
        assert port.sent[-1] == p.Rewind(1)
        await pilot.press("q")
    assert port.closed


async def test_a_failed_command_keeps_its_error_up_and_drops_the_queued_steps():
    """Issue 13: CommandFailed, then the Frame: the panel keeps the error, and CommandDone clears busy."""
    port = FakePort(state())
    app = GdtuiApp(port, name="hand_made.py")
    async with app.run_test(size=SIZE) as pilot:
        await app.opened.wait()
        await settle(pilot)
        app.pending = 1
        app._begin(p.Step(2))
        await settle(pilot)
        assert "the loss is a string" in str(app.query_one(ErrorPanel).render())
        assert not app.busy and app.pending == 0 and port.sent[-1] == p.Step(2)


async def test_the_breakpoint_screen_sends_every_condition_as_text():
    """Issue 13: the k screen edits no session: it checks a condition against the state's names
    and sends the whole list (an --until kept as it was, the built-in one last)."""
    port = FakePort(state(conditions=("loss < 0.5",), until=("loss < 0.5",)))
    app = GdtuiApp(port, name="hand_made.py")
    async with app.run_test(size=SIZE) as pilot:
        await app.opened.wait()
        await settle(pilot)
        await pilot.press("k")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, BreakpointScreen)
        assert "(until)" in str(screen.query_one("OptionList").get_option_at_index(1).prompt)
        why = []
        for text in ("acc > 2 and nope > 1", 'param_norm["w"] > 2'):
            screen.query_one("Input").value = text
            await pilot.press("enter")
            await settle(pilot)
            why.append(str(screen.query_one("#condition-why").render()))
        assert "unknown name 'nope'" in why[0] and why[1] == ""
        await pilot.press("tab")
        screen.query_one("OptionList").highlighted = 0
        await pilot.press("enter")  # the built-in condition, on
        await settle(pilot)
        assert port.sent[-2:] == [p.SetControls(conditions=("loss < 0.5", 'param_norm["w"] > 2')),
                                  p.SetControls(conditions=("loss < 0.5", 'param_norm["w"] > 2',
                                                            "loss rose 3 steps in a row"))]


class ListeningPort(FakePort):
    """A fake port attached to a trainer someone started with --listen (as ClientPort on one)."""

    listening = True

    def __init__(self, opened: SessionState):
        super().__init__(opened)
        self.socket_path: str | None = "/run/gdtui/hand_made-1.sock"

    def detach(self) -> Detached:
        path, self.socket_path = self.socket_path, None
        return Detached(path, 1, "hand_made.py", None)


async def test_d_is_dimmed_with_no_trainer_to_detach_from():
    """Issue 13: a port with no trainer to leave waiting (the in-process one, this fake): d is dimmed
    and does nothing; q quits at once, with no question."""
    port = FakePort(state())
    app = GdtuiApp(port, name="hand_made.py")
    async with app.run_test(size=SIZE) as pilot:
        await app.opened.wait()
        await settle(pilot)
        assert app.check_action("detach", ()) is None
        await pilot.press("d")
        await settle(pilot)
        assert app.is_running and app.detached is None
        await pilot.press("q")
    assert port.closed and app.detached is None


async def test_q_on_a_listen_trainer_asks_first_and_d_detaches_leaving_it_running():
    """Issue 13: q on a screen connected to a --listen trainer asks (q again ends it; d detaches; esc
    stays): esc keeps the session; q then d detaches, with no Quit sent, and the app says where the
    trainer waits."""
    port = ListeningPort(state(3, 0.75))
    app = GdtuiApp(port, name="hand_made.py")
    async with app.run_test(size=SIZE) as pilot:
        await app.opened.wait()
        await settle(pilot)
        assert app.check_action("detach", ()) is True
        await pilot.press("q")
        await settle(pilot)
        assert isinstance(app.screen, QuitPrompt)
        await pilot.press("escape")
        await settle(pilot)
        assert not isinstance(app.screen, QuitPrompt) and app.is_running
        await pilot.press("space")
        await settle(pilot)
        assert port.sent[-1] == p.Step(1)  # the session goes on
        await pilot.press("q", "d")
        await settle(pilot)
    assert app.detached == Detached("/run/gdtui/hand_made-1.sock", 1, "hand_made.py", None)
    assert not port.closed and not any(isinstance(c, p.Quit) for c in port.sent)


async def test_q_twice_on_a_listen_trainer_ends_it():
    """Issue 13: q, then q again on the question, ends the --listen trainer (Quit) and the screen."""
    port = ListeningPort(state(3, 0.75))
    app = GdtuiApp(port, name="hand_made.py")
    async with app.run_test(size=SIZE) as pilot:
        await app.opened.wait()
        await settle(pilot)
        await pilot.press("q")
        await settle(pilot)
        assert isinstance(app.screen, QuitPrompt)
        await pilot.press("q")
        await settle(pilot)
    assert port.closed and app.detached is None
