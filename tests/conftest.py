"""Shared test helpers: where things are, and the plain PyTorch loop gdtui must equal."""

from __future__ import annotations

import json
import random
import runpy
from pathlib import Path

import numpy as np
import pytest
import torch

import hypothesis_profiles  # noqa: F401 - registers --hypothesis-profile default/long before the run

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "scenarios"
BAD = Path(__file__).resolve().parent / "bad_scenarios"


def seed_scenarios() -> list[Path]:
    """The runnable seed scenarios (benchmarks excluded)."""
    return sorted(p for p in SCENARIOS.glob("*.py") if "bench" not in p.stem)


def read_trace(path: Path) -> list[dict]:
    """Every line of a trace, parsed as strict JSON (no NaN/Infinity words)."""

    def no_constants(name: str):
        raise ValueError(f"non-standard JSON constant {name}")

    return [json.loads(line, parse_constant=no_constants) for line in path.read_text().splitlines()]


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


@pytest.fixture(autouse=True, scope="session")
def ctrl_c_as_in_a_terminal():
    """The Ctrl-C tests send SIGINT to gdtui, in this process or a child. A shell that starts the
    tests in the background (`.ci/run &`) hands them SIGINT ignored, which children inherit: give
    this process Python's own handler, so that it and its children get SIGINT as in a terminal."""
    import signal

    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    yield


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """Tests run torch on one thread: on a 2-core machine tiny models are several times faster so
    (BCEWithLogitsLoss took ~3 ms a call with 2 threads, 0.2 ms with one), and every comparison is
    between gdtui and a plain loop in the same process, so the thread count cannot hide a difference."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def plain_loop():
    return PlainLoop
