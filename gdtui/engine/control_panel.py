"""The controls of one loaded scenario: checked against it, and written into its optimizer.

:class:`ControlPanel` (``session.panel``) holds a session's
:class:`~gdtui.engine.controls.Controls` as ``value``: one frozen value, replaced as one
reference, which a step reads once, as it starts (a change made during a step applies from
the next one). It knows what the frozen value cannot: the scenario a change is checked
against (its grad_fn, metrics and tensor names) and which of the user's learning rates the
optimizer's param groups already hold. The shorthands (``set_lr``, ``set_mode``,
``add_condition``, ...) each build a new value and replace ``value`` with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from gdtui.engine.conditions import Condition, RisingLoss, parse_condition
from gdtui.engine.controls import Controls
from gdtui.engine.errors import ScenarioError
from gdtui.engine.loop import Loop, manual_mode_note
from gdtui.engine.records import GradSource, Mode


class ControlPanel:
    """The user's controls of ``loop``'s scenario (the file at ``path``), ``value`` to start with."""

    def __init__(self, loop: Loop, path: Path, value: Controls):
        self.loop = loop
        self.path = path
        self.value = value
        #: The user's learning rates last written into the param groups (by identity): a change
        #: is written once, at the first update after it (see pending_lrs).
        self.lrs_written: tuple[float, ...] | None = None

    @classmethod
    def launch(cls, loop: Loop, path: Path, launch: tuple[Mode | None, float | None, GradSource | None],
               kept: Controls) -> ControlPanel:
        """The controls of a scenario just loaded: its own mode and manual learning rate, with the
        command line's ``launch`` values (mode, lr, gradient source) over them where not None;
        the stop conditions and the skip-zero_grad toggle ``kept`` from before a reset. Raises
        ScenarioError (one line, naming the flag) for a launch value it cannot take."""
        mode, lr, grad_source = launch
        sc = loop.sc
        panel = cls(loop, path, Controls(mode=mode or sc.mode, manual_lr=sc.manual_lr,  # type: ignore[arg-type]
                                         conditions=kept.conditions, rising=kept.rising,
                                         skip_zero_grad=kept.skip_zero_grad))
        # The launch values are the command line's: a bad one names its flag, not the file.
        if lr is not None:
            try:
                panel.set_lr(lr)
            except ValueError:
                raise ScenarioError(f"--lr {lr!r}: give a finite positive learning rate such as 0.01") from None
        if grad_source is not None:
            if grad_source == "grad_fn" and sc.grad_fn is None:
                raise ScenarioError(f"--grad-source grad_fn: {path} defines no grad_fn; define grad_fn() "
                                    "there for a hand-written gradient, or leave out --grad-source")
            panel.set_grad_source(grad_source)
        return panel

    def set(self, controls: Controls) -> None:
        """Use ``controls`` from the next step that starts."""
        self.value = controls

    # --- learning rates -------------------------------------------------------------------

    def groups(self) -> list[float]:
        """The learning rate each of the optimizer's param groups holds now."""
        return [g["lr"] for g in self.loop.optimizer.param_groups]

    def pending_lrs(self, controls: Controls) -> tuple[float, ...] | None:
        """The learning rates of ``controls`` that the next update writes into the param groups:
        None once written (the param groups hold them, or what the scheduler made of them)."""
        lrs = controls.lrs
        return None if lrs is None or lrs is self.lrs_written else lrs

    def unwritten(self) -> Controls:
        """``value``, with the learning rates already written left to the param groups."""
        c = self.value
        return c if self.pending_lrs(c) is c.lrs else replace(c, lrs=None)

    @property
    def lr(self) -> float:
        """The learning rate the next update will use (first param group's)."""
        return self.lrs_for(self.value.mode)[0]

    def lrs_for(self, mode: Mode) -> list[float]:
        """The learning rate of each param group that an update in ``mode`` would use.

        gdtui writes a learning rate into the optimizer's param groups only when the user changed
        it (set_lr, scale_lr): once, before the next update. Otherwise the param groups hold what
        the scenario (and its lr scheduler) put there."""
        return self.unwritten().lrs_for(mode, self.groups())

    def rewound(self, user_lrs: tuple[float, ...] | None) -> None:
        """A rewind undid the steps that wrote ``user_lrs`` (the last learning rates the user set
        among them; None: they wrote none). A learning rate the user set is a control, like the
        mode: it outlives the rewind of the steps it was written in, and is written again before
        the next update."""
        if self.pending_lrs(self.value) is None and user_lrs is not None:
            self.lrs_written = None  # the param groups are back to before it was written
            self.set(replace(self.value, lrs=user_lrs))

    # --- changes ----------------------------------------------------------------------------

    def with_(self, *, mode: Mode | None = None, grad_source: GradSource | None = None,
              lr: float | None = None, lr_scale: float | None = None, skip_zero_grad: bool | None = None,
              conditions: Sequence[str] | None = None) -> Controls:
        """The controls with each field given (not None) changed, checked, for :meth:`set`: ``lr``
        for every param group, then ``lr_scale`` times each; ``conditions`` as condition_texts
        gives them (see Controls.with_condition_texts). Raises ValueError, ConditionError or
        ScenarioError (one line) for a value it cannot take; nothing changes then."""
        c = self.unwritten()
        if mode is not None:
            c = c.with_mode(mode)
        if grad_source is not None:
            c = c.with_grad_source(grad_source)
            if grad_source == "grad_fn" and self.loop.sc.grad_fn is None:
                raise ScenarioError("this scenario defines no grad_fn; define grad_fn() to use a hand-written gradient",
                                    self.path)
        if lr is not None:
            c = c.with_lr(lr, len(self.loop.optimizer.param_groups))
        if lr_scale is not None:
            c = c.scaled_lr(lr_scale, self.groups())
        if skip_zero_grad is not None:
            c = replace(c, skip_zero_grad=bool(skip_zero_grad))
        if conditions is not None:
            c = c.with_condition_texts(conditions, self.loop.sc.metrics, self.loop.names)
        return c

    def set_lr(self, lr: float) -> None:
        """Use ``lr`` for every param group, in both modes, from the next update."""
        self.set(self.with_(lr=lr))

    def scale_lr(self, factor: float) -> None:
        """Multiply every learning rate by ``factor`` (×2 / ÷2 keys)."""
        self.set(self.with_(lr_scale=factor))

    def set_mode(self, mode: Mode) -> None:
        self.set(self.with_(mode=mode))

    def toggle_mode(self) -> Mode:
        self.set_mode("optim" if self.value.mode == "manual" else "manual")
        return self.value.mode

    def set_grad_source(self, source: GradSource) -> None:
        self.set(self.with_(grad_source=source))

    def toggle_grad_source(self) -> GradSource:
        self.set_grad_source("grad_fn" if self.value.grad_source == "autograd" else "autograd")
        return self.value.grad_source

    def set_skip_zero_grad(self, skip: bool) -> None:
        self.set(self.with_(skip_zero_grad=skip))

    def set_rising(self, rising: RisingLoss | None) -> None:
        self.set(replace(self.value, rising=rising))

    def add_condition(self, text: str, kind: str = "break") -> Condition:
        """Parse and add a stop condition; raises ConditionError (one line) if it is not valid."""
        condition = parse_condition(text, metrics=self.loop.sc.metrics, tensors=self.loop.names, kind=kind)
        self.set(self.value.with_condition(condition))
        return condition

    def set_condition_texts(self, texts: tuple[str, ...] | list[str]) -> None:
        """Replace the stop conditions with ``texts`` (see with_). All or nothing: a text that
        does not parse raises ConditionError and changes nothing."""
        self.set(self.with_(conditions=texts))

    def remove_condition(self, text: str) -> bool:
        before = self.value
        self.set(before.without_condition(text))
        return len(self.value.conditions) < len(before.conditions)

    @property
    def notes(self) -> tuple[str, ...]:
        """What the screen should say about the controls: manual mode's caveat for this optimizer."""
        if self.value.mode == "manual":
            note = manual_mode_note(self.loop.optimizer)
            if note:
                return (note,)
        return ()
