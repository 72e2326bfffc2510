"""The plain PyTorch loop gdtui must equal, and a strict reader for the traces gdtui writes.

A plain helper module (not a test module, not a conftest): tests import it as ``tests.plain_loop``.
"""

from __future__ import annotations

import json
import random
import runpy
from pathlib import Path

import numpy as np
import torch


def read_trace(path: Path) -> list[dict]:
    """Every line of a trace, parsed as strict JSON (no NaN/Infinity words)."""

    def no_constants(name: str):
        raise ValueError(f"non-standard JSON constant {name}")

    return [json.loads(line, parse_constant=no_constants) for line in path.read_text().splitlines()]


def timeline(events: list[dict]) -> list[dict]:
    """The step lines that still count after the trace's rewind lines."""
    steps: list[dict] = []
    for e in events:
        if e["event"] == "rewind":
            steps = [s for s in steps if s["step"] <= e["step"]]
        elif e["event"] == "step":
            steps.append(e)
    return steps


class PlainLoop:
    """The training loop of the seed notebooks, written out plainly over a scenario's own objects.

    It runs the scenario file with runpy (no gdtui code involved) after the same
    seeding gdtui does, then steps: forward, loss, backward, update, zero_grad.
    """

    def __init__(self, path: Path, seed: int = 0):
        torch.manual_seed(seed)
        np.random.seed(seed)
        random.seed(seed)
        self.ns = runpy.run_path(str(path))
        self.opt = self.ns.get("optimizer")
        if self.opt is None:
            tensors = [v for k, v in self.ns.items() if isinstance(v, torch.Tensor) and v.requires_grad and not k.startswith("__")]
            self.opt = torch.optim.SGD(tensors, lr=self.ns["lr"])
        self.tensors = [p for g in self.opt.param_groups for p in g["params"]]
        self.batches = None
        data = self.ns.get("data")
        if data is not None and not (isinstance(data, tuple) and len(data) == 2 and isinstance(data[0], torch.Tensor)):
            self.batches = self._forever(data)

    @staticmethod
    def _forever(loader):
        while True:
            yield from loader

    def step(self, mode: str = "optim", grad_fn: bool = False) -> dict:
        ns = self.ns
        metrics = {}
        if ns.get("model") is not None and ns.get("loss_fn") is not None:
            x, y = next(self.batches) if self.batches is not None else ns["data"]
            pred = ns["model"](x)
            loss = ns["loss_fn"](pred, y)
            for name, fn in (ns.get("metrics") or {}).items():
                with torch.no_grad():
                    metrics[name] = float(fn(pred, y))
        else:
            loss = ns["loss"]()
        if grad_fn:
            got = ns["grad_fn"]()
            grads = [got[n] for n in got] if isinstance(got, dict) else list(got)
            for p, g in zip(self.tensors, grads):
                p.grad = torch.as_tensor(g, dtype=p.dtype).clone()
        else:
            loss.backward()
        grads = [p.grad.tolist() for p in self.tensors]
        if mode == "optim":
            self.opt.step()
            self.opt.zero_grad()
        else:
            with torch.no_grad():
                for group in self.opt.param_groups:
                    lr = ns.get("lr") if ns.get("optimizer") is not None and ns.get("lr") is not None else group["lr"]
                    for p in group["params"]:
                        p -= lr * p.grad
            for p in self.tensors:
                p.grad.zero_()
        return {
            "loss": loss.item(),
            "params": [p.tolist() for p in self.tensors],
            "grads": grads,
            "metrics": metrics,
        }


def plain_losses(path, steps: int) -> list[float]:
    """The losses of ``steps`` plain steps of the scenario at ``path``, in its own mode."""
    loop = PlainLoop(path)
    return [loop.step(loop.ns.get("mode", "optim"))["loss"] for _ in range(steps)]


def plain_points(path, steps: int) -> list[tuple[int, str, list]]:
    """(finished steps, phase just run, the gradient a screen shows there) for the start (phase
    "start") and each phase of ``steps`` plain steps in optim mode, written out phase by phase. The
    gradient is the one the loop holds there, one list per tensor (tolist()) or None; after
    zero_grad, the one the update just used."""
    plain = PlainLoop(path)
    ns, opt = plain.ns, plain.opt

    def grads() -> list:
        return [None if t.grad is None else t.grad.tolist() for t in plain.tensors]

    points = [(0, "start", grads())]
    for k in range(steps):
        x, y = next(plain.batches) if plain.batches is not None else ns["data"]
        pred = ns["model"](x)
        points.append((k, "forward", grads()))
        loss = ns["loss_fn"](pred, y)
        points.append((k, "loss", grads()))
        loss.backward()
        points.append((k, "backward", grads()))
        opt.step()
        points.append((k, "update", grads()))
        used = grads()
        opt.zero_grad()
        points.append((k + 1, "zero_grad", used))  # the gradient this step's update used
    return points
