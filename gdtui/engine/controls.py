"""The user's controls of a session: update mode, gradient source, learning rates, stop conditions.

:class:`Controls` is one frozen value. A session holds one reference to it
(``Session.controls``); a change builds a new value (the ``with_*`` methods, or
``dataclasses.replace``) and replaces that reference as one assignment
(``Session.set_controls``), so a thread that reads the controls sees either
the old value or the new one, never half of each. A step reads the reference
once, as it starts: a change made while a step runs applies from the next step.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from gdtui.engine.conditions import Condition, RisingLoss, parse_condition, record_env, rising_from_text
from gdtui.engine.records import GradSource, Mode, StepRecord


@dataclass(frozen=True)
class Controls:
    """What the user chose: each field applies from the next step that starts.

    ``lrs``: the learning rates the user set (``set_lr``, ``scale_lr``), one per param group,
    written into the optimizer's param groups once, before the update of the next step that
    starts (the session keeps which tuple it wrote; from then on the param groups hold them, and
    the scenario's lr scheduler may change them); None leaves the param groups to the scenario.
    ``manual_lr``: the learning rate of manual mode, for a scenario that sets one (else manual
    mode uses the param groups' own).
    ``conditions``: the stop conditions (breakpoints and goals), parsed; ``rising``: the
    built-in "loss rose k steps in a row", or None.
    ``skip_zero_grad``: the teaching toggle: gradients accumulate across steps.
    """

    mode: Mode = "optim"
    grad_source: GradSource = "autograd"
    lrs: tuple[float, ...] | None = None
    manual_lr: float | None = None
    conditions: tuple[Condition, ...] = ()
    rising: RisingLoss | None = None
    skip_zero_grad: bool = False

    # --- learning rates -------------------------------------------------------------------

    def lrs_for(self, mode: Mode, groups: Sequence[float]) -> list[float]:
        """The learning rate of each param group that an update in ``mode`` would use, where the
        param groups hold ``groups`` now."""
        if self.lrs is not None and not (mode == "manual" and self.manual_lr is not None):
            return list(self.lrs)
        return self.live_lrs(mode, groups)

    def live_lrs(self, mode: Mode, groups: Sequence[float]) -> list[float]:
        """The learning rates an update in ``mode`` uses now, with no change of the user's pending."""
        if mode == "manual" and self.manual_lr is not None:
            return [self.manual_lr] * len(groups)
        return [float(lr) for lr in groups]

    def with_lr(self, lr: float, n_groups: int) -> Controls:
        """``lr`` for every param group, in both modes. Raises ValueError unless finite and positive."""
        lr = float(lr)
        if not (math.isfinite(lr) and lr > 0):
            raise ValueError(f"learning rate {lr!r}: give a positive number such as 0.01")
        return replace(self, lrs=(lr,) * n_groups, manual_lr=lr if self.manual_lr is not None else None)

    def scaled_lr(self, factor: float, groups: Sequence[float]) -> Controls:
        """Every learning rate times ``factor`` (×2 / ÷2 keys)."""
        if not (math.isfinite(factor) and factor > 0):
            raise ValueError(f"scale factor {factor!r} must be positive")
        manual = self.manual_lr * factor if self.manual_lr is not None else None
        return replace(self, lrs=tuple(lr * factor for lr in self.lrs_for("optim", groups)), manual_lr=manual)

    # --- mode and gradient source ---------------------------------------------------------

    def with_mode(self, mode: Mode) -> Controls:
        if mode not in ("manual", "optim"):
            raise ValueError(f"mode {mode!r}: use 'manual' or 'optim'")
        return replace(self, mode=mode)

    def with_grad_source(self, source: GradSource) -> Controls:
        """Raises ValueError for a source that is neither; the session checks that grad_fn exists."""
        if source not in ("autograd", "grad_fn"):
            raise ValueError(f"gradient source {source!r}: use 'autograd' or 'grad_fn'")
        return replace(self, grad_source=source)

    # --- stop conditions ------------------------------------------------------------------

    @property
    def condition_texts(self) -> tuple[str, ...]:
        """The stop conditions in force as the user typed them, the built-in rising one last."""
        return tuple(c.text for c in self.conditions) + ((self.rising.text,) if self.rising else ())

    @property
    def until(self) -> tuple[str, ...]:
        """The goals among the stop conditions (``--until``)."""
        return tuple(c.text for c in self.conditions if c.kind == "until")

    def with_condition(self, condition: Condition) -> Controls:
        return replace(self, conditions=(*self.conditions, condition))

    def with_condition_texts(self, texts: Sequence[str], metrics: Sequence[str], tensors: Sequence[str]) -> Controls:
        """The stop conditions replaced by ``texts`` (as condition_texts gives them): a text of a
        condition in force keeps its kind (an --until stays the goal), "loss rose K steps in a row"
        is the built-in one, any other is parsed as a breakpoint. A text that does not parse raises
        ConditionError."""
        kinds = {c.text: c for c in self.conditions}
        conditions, rising = [], None
        for text in texts:
            built_in = rising_from_text(text)
            if built_in is not None:
                rising = built_in
            elif text.strip() in kinds:
                conditions.append(kinds[text.strip()])
            else:
                conditions.append(parse_condition(text, metrics=metrics, tensors=tensors))
        return replace(self, conditions=tuple(conditions), rising=rising)

    def without_condition(self, text: str) -> Controls:
        return replace(self, conditions=tuple(c for c in self.conditions if c.text != text.strip()))

    def triggered(self, record: StepRecord, losses: Sequence[float]) -> list[Condition | RisingLoss]:
        """The stop conditions that hold after ``record``'s step; ``losses``: every step's, up to it."""
        if not self.conditions and self.rising is None:
            return []
        previous = losses[-2] if len(losses) >= 2 else None
        env = record_env(record, previous)
        hits: list[Condition | RisingLoss] = [c for c in self.conditions if c.holds(env)]
        if self.rising is not None and self.rising.holds_for(losses):
            hits.append(self.rising)
        return hits
