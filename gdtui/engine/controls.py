"""The user's controls of a session: learning rate, update mode, gradient source, stop conditions.

:class:`Controls` is the part of :class:`gdtui.engine.session.Session` that
holds what the user chose; each change applies from the next update (or, for
a stop condition, from the next finished step).
"""

from __future__ import annotations

import math

from gdtui.engine.conditions import Condition, RisingLoss, parse_condition, record_env, rising_from_text
from gdtui.engine.errors import ScenarioError
from gdtui.engine.loop import manual_mode_note
from gdtui.engine.records import GradSource, Mode, StepRecord


class Controls:
    """Session's controls. A part of Session, which provides what it uses: ``mode``,
    ``grad_source``, ``conditions``, ``rising``, ``losses``, ``loop``, ``scenario``, ``path``,
    ``_lr_override`` and ``_manual_lr``.

    gdtui writes a learning rate into the optimizer's param groups only when the user changed
    it (``set_lr``, ``scale_lr``): once, before the next update. Otherwise the param groups
    hold what the scenario (and its lr scheduler) put there."""

    @property
    def lr(self) -> float:
        """The learning rate the next update will use (first param group's)."""
        return self.lrs_for(self.mode)[0]

    def lrs_for(self, mode: Mode) -> list[float]:
        """The learning rate of each param group that an update in ``mode`` would use."""
        if self._lr_override is not None and not (mode == "manual" and self._manual_lr is not None):
            return list(self._lr_override)
        return self._live_lrs(mode)

    def _live_lrs(self, mode: Mode) -> list[float]:
        """The learning rates an update in ``mode`` uses now, with no change of the user's pending."""
        groups = self.loop.optimizer.param_groups
        if mode == "manual" and self._manual_lr is not None:
            return [self._manual_lr] * len(groups)
        return [float(g["lr"]) for g in groups]

    def set_lr(self, lr: float) -> None:
        """Use ``lr`` for every param group, in both modes, from the next update."""
        lr = float(lr)
        if not (math.isfinite(lr) and lr > 0):
            raise ValueError(f"learning rate {lr!r}: give a positive number such as 0.01")
        self._lr_override = [lr] * len(self.loop.optimizer.param_groups)
        self._manual_lr = lr if self._manual_lr is not None else None

    def scale_lr(self, factor: float) -> None:
        """Multiply every learning rate by ``factor`` (×2 / ÷2 keys)."""
        if not (math.isfinite(factor) and factor > 0):
            raise ValueError(f"scale factor {factor!r} must be positive")
        self._lr_override = [lr * factor for lr in self.lrs_for("optim")]
        if self._manual_lr is not None:
            self._manual_lr *= factor

    def set_mode(self, mode: Mode) -> None:
        if mode not in ("manual", "optim"):
            raise ValueError(f"mode {mode!r}: use 'manual' or 'optim'")
        self.mode = mode

    def toggle_mode(self) -> Mode:
        self.set_mode("optim" if self.mode == "manual" else "manual")
        return self.mode

    def set_grad_source(self, source: GradSource) -> None:
        if source not in ("autograd", "grad_fn"):
            raise ValueError(f"gradient source {source!r}: use 'autograd' or 'grad_fn'")
        if source == "grad_fn" and self.scenario.grad_fn is None:
            raise ScenarioError("this scenario defines no grad_fn; define grad_fn() to use a hand-written gradient", self.path)
        self.grad_source = source

    def toggle_grad_source(self) -> GradSource:
        self.set_grad_source("grad_fn" if self.grad_source == "autograd" else "autograd")
        return self.grad_source

    @property
    def notes(self) -> tuple[str, ...]:
        notes = []
        if self.mode == "manual":
            note = manual_mode_note(self.loop.optimizer)
            if note:
                notes.append(note)
        return tuple(notes)

    # --- stop conditions ----------------------------------------------------------------

    @property
    def condition_texts(self) -> tuple[str, ...]:
        """The stop conditions in force as the user typed them, the built-in rising one last."""
        return tuple(c.text for c in self.conditions) + ((self.rising.text,) if self.rising else ())

    def add_condition(self, text: str, kind: str = "break") -> Condition:
        """Parse and add a stop condition; raises ConditionError (one line) if it is not valid."""
        condition = parse_condition(text, metrics=self.scenario.metrics, tensors=self.loop.names, kind=kind)
        self.conditions = [*self.conditions, condition]  # a new list: a running worker may be reading the old one
        return condition

    def set_condition_texts(self, texts: tuple[str, ...] | list[str]) -> None:
        """Replace the stop conditions with ``texts`` (as condition_texts gives them): a text of
        a condition in force keeps its kind (an --until stays the goal), "loss rose K steps in a
        row" is the built-in one, any other is parsed as a breakpoint. All or nothing: a text
        that does not parse raises ConditionError and changes nothing."""
        kinds = {c.text: c for c in self.conditions}
        conditions, rising = [], None
        for text in texts:
            built_in = rising_from_text(text)
            if built_in is not None:
                rising = built_in
            elif text.strip() in kinds:
                conditions.append(kinds[text.strip()])
            else:
                conditions.append(parse_condition(text, metrics=self.scenario.metrics, tensors=self.loop.names))
        self.conditions, self.rising = conditions, rising  # new references: a running worker reads one or the other

    def remove_condition(self, text: str) -> bool:
        kept = [c for c in self.conditions if c.text != text.strip()]
        removed = len(kept) < len(self.conditions)
        self.conditions = kept  # a new list, as in add_condition
        return removed

    def triggered(self, record: StepRecord) -> list[Condition | RisingLoss]:
        """The stop conditions that hold after ``record``'s step."""
        if not self.conditions and self.rising is None:
            return []
        previous = self.losses[-2] if len(self.losses) >= 2 else None
        env = record_env(record, previous)
        hits: list[Condition | RisingLoss] = [c for c in self.conditions if c.holds(env)]
        if self.rising is not None and self.rising.holds_for(self.losses):
            hits.append(self.rising)
        return hits
