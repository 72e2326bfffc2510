"""The trainer port: the one way the screen talks to the engine.

The app holds one port. It sends the port gdtui.protocol's commands (Step, Phase, Run,
Pause, Rewind, Reset, SetControls, GradientCheck, Compare, OptimizerState, Hints, Detail,
Chart, Export, Interrupt, Quit) and gets gdtui.messages back, posted to it as Textual
messages. The screen never holds a Session: it shows the records those messages carry.

The app's port is :class:`gdtui.client_port.ClientPort`, which talks to a trainer process
through gdtui.client and posts the trainer's events as these messages;
:class:`gdtui.jobs.InProcessPort` steps the session in a thread worker of the app, for tests
that read its Session. Neither this module nor the screen imports torch or the engine's
tensor code.

What a port does with a command:
* Pause, Interrupt and SetControls act at once, even while a command runs: a
  run pauses after its step, a gradient check stops, a control applies from the next step.
  They post no CommandDone.
* Every other command is queued and run one at a time, in order; each ends with exactly one
  CommandDone, after the command's other messages.

A port whose trainer can outlive the screen (ClientPort) also has ``socket_path`` (the trainer it
is attached to, or None), ``listening`` (a --listen trainer: q asks first) and ``detach()`` (``d``:
leave it paused, and say where it waits). The app reads them with getattr: the in-process port
has none, and ``d`` is dimmed there.
"""

from __future__ import annotations

from typing import Protocol

from gdtui import protocol as p

#: Commands that act at once rather than wait their turn; they end with no CommandDone.
IMMEDIATE: tuple[type, ...] = (p.Pause, p.Interrupt, p.SetControls)


class TrainerPort(Protocol):
    """What the app needs of a port."""

    #: The trace log that export reads, which an export must not overwrite (None: none is kept).
    trace_path: str | None

    def start(self) -> None:
        """Load the scenario: Opened or LoadFailed, then CommandDone."""

    def send(self, command: object) -> None:
        """One command (see the module's docstring for when it acts)."""

    def close(self) -> None:
        """The app is quitting: stop a run, end the trace, leave nothing running."""
