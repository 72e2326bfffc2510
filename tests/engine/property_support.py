"""Random scenarios and user actions, and the two sides test_property.py compares.

A :class:`Scenario` is drawn by hypothesis and written out as a scenario file
(the README's contract: ``model``, ``loss_fn``, ``data``, ``optimizer``). A list
of actions is what a user does with the keys: step, take single phases, switch
mode, change the learning rate, rewind, reset.

Both sides turn the same file and the same actions into a list of
observations:

* :func:`observe_gdtui` drives a gdtui :class:`~gdtui.engine.Session` and
  reads its records and ``state()``;
* :class:`PlainMirror` runs the file with ``runpy`` (no gdtui code) and writes
  the training loop out by hand.

The two lists must be equal, floats with ``==`` (a NaN equals only a NaN).
The sides run one after the other, never interleaved: a shuffled DataLoader
draws from the global torch RNG when each epoch starts, so each side must own
that RNG while it runs.
"""

from __future__ import annotations

import random
import runpy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hypothesis import strategies as st

from gdtui.engine import Session

PHASES = ("forward", "loss", "backward", "update", "zero_grad")

ACTIVATIONS = {"tanh": "nn.Tanh()", "relu": "nn.ReLU()", "sigmoid": "nn.Sigmoid()"}

OPTIMIZERS = {
    "sgd": "torch.optim.SGD(model.parameters(), lr={lr!r})",
    "momentum": "torch.optim.SGD(model.parameters(), lr={lr!r}, momentum=0.9)",
    "adam": "torch.optim.Adam(model.parameters(), lr={lr!r})",
    "adamw": "torch.optim.AdamW(model.parameters(), lr={lr!r})",
    "rmsprop": "torch.optim.RMSprop(model.parameters(), lr={lr!r})",
}


# --- scenarios ------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    """A small network, its loss, optimizer and data; ``source()`` is the scenario file."""

    seed: int
    widths: tuple[int, ...]  # in, hidden…, out: one more than the Linear layers
    activations: tuple[str, ...]  # one between each two Linear layers
    loss: str  # "mse" | "cross_entropy"
    optimizer: str  # a key of OPTIMIZERS
    lr: float  # the optimizer's lr
    rows: int
    batch_size: int | None  # None: full batch data = (x, y)
    manual_lr: float | None = None  # the file's `lr` variable, the manual-update lr
    mode: str | None = None  # the file's `mode` variable
    metric: bool = False

    def source(self) -> str:
        layers = []
        for i, (a, b) in enumerate(zip(self.widths, self.widths[1:])):
            if i:
                layers.append(ACTIVATIONS[self.activations[i - 1]])
            layers.append(f"nn.Linear({a}, {b})")
        n, d_in, d_out = self.rows, self.widths[0], self.widths[-1]
        if self.loss == "mse":
            targets, loss_fn = f"torch.randn({n}, {d_out})", "nn.MSELoss()"
            metric = "lambda pred, y: (pred - y).abs().mean()"
        else:
            targets, loss_fn = f"torch.randint(0, {d_out}, ({n},))", "nn.CrossEntropyLoss()"
            metric = "lambda pred, y: (pred.argmax(dim=1) == y).float().mean()"
        if self.batch_size is None:
            data = "(x, y)"
        else:
            data = f"DataLoader(TensorDataset(x, y), batch_size={self.batch_size}, shuffle=True)"
        lines = [
            '"""A drawn scenario for the fidelity property test"""',
            "import torch",
            "from torch import nn",
            "from torch.utils.data import DataLoader, TensorDataset",
            "",
            f"torch.manual_seed({self.seed})",
            f"model = nn.Sequential({', '.join(layers)})",
            f"x = torch.randn({n}, {d_in})",
            f"y = {targets}",
            f"loss_fn = {loss_fn}",
            f"data = {data}",
            f"optimizer = {OPTIMIZERS[self.optimizer].format(lr=self.lr)}",
        ]
        if self.manual_lr is not None:
            lines.append(f"lr = {self.manual_lr!r}")
        if self.mode is not None:
            lines.append(f"mode = {self.mode!r}")
        if self.metric:
            lines.append(f'metrics = {{"m": {metric}}}')
        return "\n".join(lines) + "\n"

    def write(self, folder: Path) -> Path:
        path = folder / "drawn_scenario.py"
        path.write_text(self.source())
        return path


learning_rates = st.floats(min_value=1e-3, max_value=2.0, allow_nan=False, allow_infinity=False)


@st.composite
def scenarios(draw) -> Scenario:
    layers = draw(st.integers(1, 3))
    loss = draw(st.sampled_from(["mse", "cross_entropy"]))
    widths = [draw(st.integers(1, 5)) for _ in range(layers)]
    widths.append(draw(st.integers(2 if loss == "cross_entropy" else 1, 5)))
    rows = draw(st.integers(4, 12))
    return Scenario(
        seed=draw(st.integers(0, 2**31 - 1)),
        widths=tuple(widths),
        activations=tuple(draw(st.sampled_from(sorted(ACTIVATIONS))) for _ in range(layers - 1)),
        loss=loss,
        optimizer=draw(st.sampled_from(sorted(OPTIMIZERS))),
        lr=draw(learning_rates),
        rows=rows,
        batch_size=draw(st.none() | st.integers(1, rows)),
        manual_lr=draw(st.none() | learning_rates),
        mode=draw(st.none() | st.sampled_from(["manual", "optim"])),
        metric=draw(st.booleans()),
    )


@dataclass(frozen=True)
class Launch:
    """The Session's constructor options: they outlive reset, unlike set_mode/set_lr."""

    mode: str | None = None
    lr: float | None = None
    #: Steps between rewind checkpoints (None: gdtui picks); rewinds between two replay steps.
    checkpoint_every: int | None = 3


launches = st.builds(
    Launch,
    mode=st.none() | st.sampled_from(["manual", "optim"]),
    lr=st.none() | learning_rates,
    checkpoint_every=st.sampled_from([1, 2, 3, None]),
)

#: One user action: ("step",), ("phases", k), ("mode", m), ("set_lr", lr), ("scale_lr", f), ("rewind", n), ("reset",).
action = st.one_of(
    st.just(("step",)),
    st.just(("step",)),
    st.tuples(st.just("phases"), st.integers(1, 5)),
    st.tuples(st.just("phases"), st.integers(1, 5)),
    st.tuples(st.just("mode"), st.sampled_from(["manual", "optim"])),
    st.tuples(st.just("set_lr"), learning_rates),
    st.tuples(st.just("scale_lr"), st.sampled_from([0.5, 2.0, 0.1, 10.0])),
    st.tuples(st.just("rewind"), st.integers(1, 4)),
    st.just(("reset",)),
)
actions = st.lists(action, min_size=5, max_size=25)


# --- comparing ------------------------------------------------------------------------


def same(a: Any, b: Any) -> bool:
    """Exact equality through nested dicts, lists and tuples; NaN equals NaN, nothing else is loose."""
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (a != a and b != b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def _zero_as_none(values: Any) -> Any:
    """A gradient's values, with an all-zero gradient shown as None.

    After zero_grad a gradient is None (optimizer.zero_grad()) or zeros
    (p.grad.zero_()), and rewind may give either; the next backward gives the same
    numbers from both, so the observations do not tell them apart.
    """

    def flat(v: Any) -> list[float]:
        return [x for item in v for x in flat(item)] if isinstance(v, list) else [v]

    if values is None or all(x == 0 for x in flat(values)):
        return None
    return values


# --- the gdtui side -------------------------------------------------------------------

#: Whether records are compared on ``lr`` too: the lr the update used, also when the lr
#: changes between the update and zero_grad phases (test_record_lr_is_the_lr_the_update_used).
CHECK_RECORD_LR = True


def record_obs(r) -> dict:
    """What a StepRecord says, in plain values."""
    return {
        **({"lr": r.lr} if CHECK_RECORD_LR else {}),
        "step": r.step,
        "epoch": r.epoch,
        "batch": r.batch,
        "mode": r.mode,
        "loss": r.loss,
        "metrics": dict(r.metrics),
        "params": {k: v.values for k, v in r.params.items()},
        "grads": {k: v.values for k, v in r.grads.items()},
    }


def state_obs(s) -> dict:
    return {
        "step": s.step,
        "next_phase": s.next_phase,
        "mode": s.mode,
        "lr": s.lr,
        "loss": s.loss,
        "params": {k: v.values for k, v in s.params.items()},
        "grads": {k: _zero_as_none(None if v is None else v.values) for k, v in s.grads.items()},
    }


def observe_gdtui(path: Path, launch: Launch, actions: list[tuple]) -> list[tuple]:
    """Run ``actions`` on a gdtui Session; return (action index, kind, observation) triples.

    The state is observed after every action and after every single phase; a
    record whenever a step finishes; rewind's count of undone steps.
    """
    session = Session(path, mode=launch.mode, lr=launch.lr, max_values=100_000, checkpoint_every=launch.checkpoint_every)
    out: list[tuple] = [(-1, "state", state_obs(session.state()))]
    for i, (kind, *args) in enumerate(actions):
        if kind == "step":
            out.append((i, "record", record_obs(session.step())))
        elif kind == "phases":
            for _ in range(args[0]):
                record = session.step_phase()
                if record is not None:
                    out.append((i, "record", record_obs(record)))
                out.append((i, "state", state_obs(session.state())))
        elif kind == "mode":
            session.panel.set_mode(args[0])
        elif kind == "set_lr":
            session.panel.set_lr(args[0])
        elif kind == "scale_lr":
            session.panel.scale_lr(args[0])
        elif kind == "rewind":
            out.append((i, "rewound", session.rewind(args[0])))
        elif kind == "reset":
            session.reset()
        else:
            raise ValueError(kind)
        out.append((i, "state", state_obs(session.state())))
    return out


# --- the plain side -------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """The user's controls: mode, the optimizer's lr, and the scenario's manual ``lr`` (or None)."""

    mode: str
    group_lr: float
    manual_lr: float | None

    def lr_for(self, mode: str) -> float:
        """The lr an update in ``mode`` uses: manual mode prefers the scenario's ``lr``."""
        return self.manual_lr if mode == "manual" and self.manual_lr is not None else self.group_lr

    def with_lr(self, lr: float) -> Settings:
        return Settings(self.mode, lr, lr if self.manual_lr is not None else None)

    def scaled(self, factor: float) -> Settings:
        return Settings(self.mode, self.group_lr * factor, None if self.manual_lr is None else self.manual_lr * factor)


class PlainMirror:
    """The user's actions replayed on a plain PyTorch loop over the scenario file.

    The loop is written out here with no gdtui code: ``runpy`` executes the
    file after seeding torch, numpy and ``random`` with 0 (as gdtui does), and
    each step runs forward, loss, backward, then ``optimizer.step();
    optimizer.zero_grad()`` in optim mode or ``p -= lr * p.grad`` under
    no_grad and ``p.grad.zero_()`` in manual mode. A step can be taken one
    phase at a time; mode and lr are read once, as the step starts (its
    forward): a change made during a step applies from the next one.

    How rewind and reset are modelled, the simplest way that is plainly right:

    * The loop's whole state since the last reset is a function of one list:
      the :class:`Settings` each finished step's update used. ``rewind(n)``
      drops the step in progress (it counts as one, as in gdtui), then the last
      ``min(n, len)`` entries, and re-runs the file from scratch, replaying the
      steps that remain with their own settings. Re-running reproduces the
      weights, the optimizer state, the RNG and the DataLoader's position
      without copying any of them. The current mode and lr are the user's and
      stay as they are.
    * ``reset()`` empties the list and goes back to the launch settings: the
      file's ``mode`` (or optim), the optimizer's lr and the file's ``lr``,
      then the Session's constructor ``mode``/``lr`` on top. A mode or lr set
      after launch is dropped.
    """

    def __init__(self, path: Path, scenario: Scenario, launch: Launch):
        self.path, self.scenario, self.launch = path, scenario, launch
        self._install()

    # --- the loop ---------------------------------------------------------------------

    def _install(self) -> None:
        sc, launch = self.scenario, self.launch
        self.settings = Settings(launch.mode or sc.mode or "optim", float(sc.lr), sc.manual_lr)
        if launch.lr is not None:
            self.settings = self.settings.with_lr(launch.lr)
        self.done: list[Settings] = []
        self._run_file()

    def _run_file(self) -> None:
        """Execute the file afresh, then replay the finished steps in ``self.done``."""
        torch.manual_seed(0)
        np.random.seed(0)
        random.seed(0)
        ns = runpy.run_path(str(self.path))
        self.model, self.loss_fn, self.opt = ns["model"], ns["loss_fn"], ns["optimizer"]
        self.metrics = ns.get("metrics") or {}
        self.names = [name for name, _ in self.model.named_parameters()]
        self.tensors = [p for _, p in self.model.named_parameters()]
        data = ns["data"]
        self.full_batch = data if isinstance(data, tuple) else None
        self.batches = None if isinstance(data, tuple) else self._epochs(data)
        self.per_epoch = None if isinstance(data, tuple) else len(data)
        self.phase = 0
        self.last_loss: float | None = None
        self._clear()
        replay, self.done = self.done, []
        for settings in replay:
            for _ in PHASES:
                self._phase(settings)

    @staticmethod
    def _epochs(loader):
        while True:
            yield from loader

    def _clear(self) -> None:
        self.pred = self.targets = self.loss = None
        self.metric_values: dict[str, float] = {}
        self.update_settings: Settings | None = None

    def _phase(self, settings: Settings) -> dict | None:
        """Run the next phase with ``settings`` as the controls; after zero_grad, the step's record."""
        name = PHASES[self.phase]
        self.phase = (self.phase + 1) % len(PHASES)
        if name == "forward":
            self.step_settings = settings
            x, self.targets = next(self.batches) if self.batches is not None else self.full_batch
            self.pred = self.model(x)
        elif name == "loss":
            self.loss = self.loss_fn(self.pred, self.targets)
            with torch.no_grad():
                self.metric_values = {k: float(fn(self.pred, self.targets)) for k, fn in self.metrics.items()}
        elif name == "backward":
            self.loss.backward()
        elif name == "update":
            self.update_settings = s = self.step_settings
            if s.mode == "optim":
                for group in self.opt.param_groups:
                    group["lr"] = s.group_lr
                self.opt.step()
            else:
                lr = s.lr_for("manual")
                with torch.no_grad():
                    for p in self.tensors:
                        p -= lr * p.grad
        else:
            s = self.update_settings
            record = {
                **({"lr": s.lr_for(s.mode)} if CHECK_RECORD_LR else {}),
                "step": len(self.done) + 1,
                "epoch": self._epoch_batch()[0],
                "batch": self._epoch_batch()[1],
                "mode": s.mode,
                "loss": self.loss.item(),
                "metrics": self.metric_values,
                "params": self.values(),
                "grads": {n: p.grad.tolist() for n, p in zip(self.names, self.tensors)},
            }
            if s.mode == "optim":
                self.opt.zero_grad()
            else:
                for p in self.tensors:
                    p.grad.zero_()
            self.done.append(s)
            self.last_loss = record["loss"]
            self._clear()
            return record
        return None

    def _epoch_batch(self) -> tuple[int, int]:
        k = len(self.done)  # finished steps before this one
        if self.per_epoch is None:
            return k + 1, 1
        return k // self.per_epoch + 1, k % self.per_epoch + 1

    def values(self) -> dict:
        return {n: p.tolist() for n, p in zip(self.names, self.tensors)}

    def state(self) -> dict:
        s = self.settings
        return {
            "step": len(self.done),
            "next_phase": PHASES[self.phase],
            "mode": s.mode,
            "lr": s.lr_for(s.mode),
            "loss": self.loss.item() if self.loss is not None else self.last_loss,
            "params": self.values(),
            "grads": {n: _zero_as_none(None if p.grad is None else p.grad.tolist()) for n, p in zip(self.names, self.tensors)},
        }

    # --- the user's actions -------------------------------------------------------------

    def step_phase(self) -> dict | None:
        return self._phase(self.settings)

    def step(self) -> dict:
        while True:
            record = self.step_phase()
            if record is not None:
                return record

    def rewind(self, n: int) -> int:
        undone = 0
        if self.phase:
            undone, n = 1, n - 1
        k = min(n, len(self.done))
        if undone or k:
            del self.done[len(self.done) - k :]
            self._run_file()
        return undone + k

    def reset(self) -> None:
        self._install()

    def observe(self, actions: list[tuple]) -> list[tuple]:
        """The observations :func:`observe_gdtui` makes, computed on the plain loop."""
        out: list[tuple] = [(-1, "state", self.state())]
        for i, (kind, *args) in enumerate(actions):
            if kind == "step":
                out.append((i, "record", self.step()))
            elif kind == "phases":
                for _ in range(args[0]):
                    record = self.step_phase()
                    if record is not None:
                        out.append((i, "record", record))
                    out.append((i, "state", self.state()))
            elif kind == "mode":
                self.settings = Settings(args[0], self.settings.group_lr, self.settings.manual_lr)
            elif kind == "set_lr":
                self.settings = self.settings.with_lr(args[0])
            elif kind == "scale_lr":
                self.settings = self.settings.scaled(args[0])
            elif kind == "rewind":
                out.append((i, "rewound", self.rewind(args[0])))
            elif kind == "reset":
                self.reset()
            else:
                raise ValueError(kind)
            out.append((i, "state", self.state()))
        return out


def first_difference(got: list[tuple], expected: list[tuple], actions: list[tuple]) -> str | None:
    """None when the observation lists are the same, else where and how they first differ."""
    for n, (g, e) in enumerate(zip(got, expected)):
        if not same(g, e):
            i = e[0]
            lines = [f"observation {n}, after action {i} {actions[i] if i >= 0 else '(launch)'}:"]
            if g[:2] != e[:2]:
                lines.append(f"  gdtui {g[:2]}, plain {e[:2]}")
            elif isinstance(e[2], dict):
                for key in e[2]:
                    if not same(g[2].get(key), e[2][key]):
                        lines.append(f"  {e[1]} {key}: gdtui {g[2].get(key)!r}")
                        lines.append(f"  {' ' * len(e[1])} {key}: plain {e[2][key]!r}")
            else:
                lines.append(f"  {e[1]}: gdtui {g[2]!r}, plain {e[2]!r}")
            lines.append(f"  actions so far: {actions[: i + 1]}")
            return "\n".join(lines)
    if len(got) != len(expected):
        return f"gdtui made {len(got)} observations, the plain loop {len(expected)}"
    return None
