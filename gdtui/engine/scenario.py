"""Loading a scenario module and checking it against the scenario contract.

A scenario is a plain Python file. gdtui seeds every RNG, executes the file in a
fresh module under the requested default device, then reads its module-level
names (see docs/scenarios.md). Every problem found here is a
:class:`gdtui.engine.errors.ScenarioError` whose message is one line:
``path:line: what; how to fix``.
"""

from __future__ import annotations

import argparse
import ast
import builtins
import contextlib
import io
import os
import random
import sys
import tokenize
import types
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from numbers import Real
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.optim.lr_scheduler import LRScheduler, ReduceLROnPlateau

from gdtui.engine.errors import ScenarioError, a_type, error_from, locate, one_line, stops_the_run

MODULE_NAME = "__gdtui_scenario__"


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def resolve_device(spec: str) -> torch.device:
    """``cpu``, ``cuda``, ``cuda:N`` or ``mps``, checked to exist on this machine."""
    try:
        device = torch.device(spec)
    except (RuntimeError, ValueError):
        raise ScenarioError(f"--device {spec!r} is not a device; use cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ScenarioError(
                f"--device {spec}: CUDA is not available on this machine (torch {torch.__version__}); "
                "use --device cpu, or install a CUDA build of torch"
            )
        count = torch.cuda.device_count()
        index = torch.cuda.current_device() if device.index is None else device.index
        if index >= count:
            raise ScenarioError(f"--device {spec}: this machine has {count} CUDA device(s); use cuda:0 to cuda:{count - 1}")
        return torch.device("cuda", index)
    if device.type == "mps":
        if not torch.backends.mps.is_available():
            raise ScenarioError(f"--device {spec}: MPS is not available on this machine; use --device cpu")
        if device.index not in (None, 0):
            raise ScenarioError(f"--device {spec}: this machine has one MPS device; use --device mps")
        return device
    if device.type != "cpu":
        raise ScenarioError(f"--device {spec}: gdtui runs on cpu, cuda or mps; use one of those")
    if device.index not in (None, 0):  # torch takes cpu:1, then no tensor is ever on it
        raise ScenarioError(f"--device {spec}: the CPU is one device; use --device cpu")
    return torch.device("cpu")


def check_arguments(path: str | Path, device: str) -> None:
    """What the command line names exists: the scenario file and the device (raises ScenarioError)."""
    path = Path(path)
    if not path.is_file():
        raise ScenarioError("no such scenario file; check the path" if not path.exists() else
                            "not a file; name the scenario's .py file", path)
    resolve_device(device)


def _definition_lines(tree: ast.Module) -> dict[str, int]:
    """Module-level name → line of its last top-level definition."""
    lines: dict[str, int] = {}

    def bind(target: ast.AST, line: int) -> None:
        if isinstance(target, ast.Name):
            lines[target.id] = line
        elif isinstance(target, (ast.Tuple, ast.List)):
            for t in target.elts:
                bind(t, line)

    for node in tree.body:
        if isinstance(node, ast.Assign):
            for t in node.targets:
                bind(t, node.lineno)
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
            bind(node.target, node.lineno)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            lines[node.name] = node.lineno
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                lines[(alias.asname or alias.name).split(".")[0]] = node.lineno
    return lines


class _ArgumentsRefused(SystemExit):
    """The scenario's own argparse refused its arguments: a SystemExit still, so that a scenario
    that catches one goes on as it would under ``python``, but with argparse's message kept."""

    def __init__(self, prog: str, message: str):
        super().__init__(2)
        self.prog, self.message = prog, message


def _refuse_arguments(parser: argparse.ArgumentParser, message: str) -> None:
    raise _ArgumentsRefused(parser.prog, message)


@contextlib.contextmanager
def _scenario_argv(path: Path, args: Sequence[str]):
    """While the scenario loads: ``sys.argv`` is ``[path, *args]``, as ``python path args`` gives
    it (gdtui's own flags are not the scenario's), and an argparse error raises rather than
    printing its usage block, so that gdtui can say it in one line."""
    saved_argv, saved_error = sys.argv, argparse.ArgumentParser.error
    sys.argv = [str(path), *args]
    argparse.ArgumentParser.error = _refuse_arguments  # type: ignore[method-assign]
    try:
        yield
    finally:
        sys.argv = saved_argv
        argparse.ArgumentParser.error = saved_error  # type: ignore[method-assign]


def _refuse_input(*_args: Any, **_kwargs: Any) -> str:
    raise RuntimeError("the scenario called input(); a scenario must not read the terminal, set the value in the file")


@dataclass
class Scenario:
    """A loaded, checked scenario: the live objects gdtui will step."""

    path: Path
    seed: int
    device: torch.device
    title: str
    description: str
    namespace: dict[str, Any]
    lines: dict[str, int]
    params: dict[str, torch.Tensor]
    optimizer: torch.optim.Optimizer
    model: Callable[..., Any] | None = None
    loss_fn: Callable[..., Any] | None = None
    objective: Callable[[], Any] | None = None
    #: (inputs, targets) for a full batch, else None.
    full_batch: tuple[Any, Any] | None = None
    #: A re-iterable of (inputs, targets) batches, else None.
    batches: Iterable[Any] | None = None
    manual_lr: float | None = None
    mode: str = "optim"
    grad_fn: Callable[[], Any] | None = None
    metrics: dict[str, Callable[[Any, Any], Any]] = field(default_factory=dict)
    steps: int | None = None
    made_optimizer: bool = False
    #: The scenario's lr scheduler, stepped after each update ("step") or epoch ("epoch").
    scheduler: Any = None
    scheduler_interval: str = "step"
    #: The code as loaded (the gradient check tells when the file on disk has changed since).
    tree: ast.Module | None = None

    def line(self, *names: str) -> int | None:
        """The line where the first of ``names`` that the file defines is defined."""
        for name in names:
            if name in self.lines:
                return self.lines[name]
        return None

    def error(self, message: str, *names: str) -> ScenarioError:
        return ScenarioError(message, self.path, self.line(*names))

    @property
    def buffers(self) -> list[torch.Tensor]:
        return list(self.model.buffers()) if isinstance(self.model, nn.Module) else []


def read_source(path: Path) -> str:
    """The file's text decoded as Python decodes a source file: a UTF-8 BOM, else a PEP 263
    ``coding:`` line in the first two, else UTF-8. Raises ScenarioError naming the line when the
    declared encoding is unknown or a byte does not decode."""
    data = path.read_bytes()
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError as exc:  # an unknown encoding, a BOM with another coding line, or not UTF-8
        if not exc.msg.startswith("invalid or missing encoding declaration"):
            cookie = next((i for i, line in enumerate(data.splitlines()[:2], 1) if b"coding" in line), 1)
            raise ScenarioError(f"{exc.msg}; declare an encoding Python knows, such as # coding: utf-8",
                                path, cookie) from None
        encoding = "utf-8"  # a first line that is not UTF-8: the decoding below says where
    try:
        return data.decode(encoding)  # utf-8-sig after a BOM, which it drops
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ScenarioError(
            f"byte {data[exc.start]:#04x} is not {exc.encoding}; save the file as UTF-8, or declare its "
            "encoding in a first line such as # coding: latin-1",
            path,
            line,
        ) from None


def execute(path: Path, seed: int, device: torch.device, file: Path | None = None,
            args: Sequence[str] = ()) -> tuple[dict[str, Any], ast.Module]:
    """Run the scenario file in a fresh module; return its namespace and syntax tree.

    The file runs with ``sys.argv == [path, *args]``: ``args`` are the ones after ``--`` on
    gdtui's command line. gdtui's own ``sys.argv`` is back once it has run.

    ``path`` is the file as the user named it, for messages; ``file`` (default: ``path`` made
    absolute now) is where it is read from, its ``__file__`` (absolute, as Python gives a script)
    and the folder put on ``sys.path``: a scenario may change the working directory.
    """
    file = Path(os.path.abspath(path if file is None else file))
    try:
        source = read_source(file)
    except FileNotFoundError:
        raise ScenarioError("no such scenario file; check the path", path) from None
    except OSError as exc:
        raise ScenarioError(f"cannot read the scenario: {one_line(exc)}", path) from None
    try:
        tree = ast.parse(source, filename=str(path))
        code = compile(tree, str(path), "exec")
    except SyntaxError as exc:
        raise ScenarioError(f"SyntaxError: {exc.msg}; fix the Python syntax", path, exc.lineno) from None
    module = types.ModuleType(MODULE_NAME)
    module.__file__ = str(file)
    namespace = module.__dict__
    scenario_builtins = dict(vars(builtins))
    scenario_builtins["input"] = _refuse_input
    namespace["__builtins__"] = scenario_builtins
    sys.modules[MODULE_NAME] = module
    folder = str(file.parent)
    sys.path.insert(0, folder)
    seed_everything(seed)
    try:
        with torch.device(device), _scenario_argv(path, args):
            exec(code, namespace)
    except _ArgumentsRefused as exc:
        fix = (f"fix the arguments after -- ({' '.join(args)})" if args else
               f"give the scenario's arguments after --, as in gdtui {path} -- --flag value")
        raise ScenarioError(f"the scenario's argparse refused its command line: {one_line(exc.message)}; {fix}",
                            path, locate(exc, path)) from None
    except SystemExit:
        raise ScenarioError(
            "the scenario called sys.exit() (or exit()); remove it, gdtui runs the training loop", path
        ) from None
    except BaseException as exc:  # noqa: BLE001 - any failure of user code becomes one line
        if stops_the_run(exc):
            raise
        raise error_from(exc, path, "loading the scenario") from None
    finally:
        try:
            sys.path.remove(folder)
        except ValueError:
            pass
    return namespace, tree


def _is_tensor_pair(data: Any) -> bool:
    return isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(d, torch.Tensor) for d in data)


def _read_data(ns: dict[str, Any], sc: Scenario) -> None:
    if "data" not in ns:
        raise sc.error("no `data` defined; set data = (inputs, targets) or a DataLoader of (inputs, targets) batches", "model")
    data = ns["data"]
    if _is_tensor_pair(data):
        x, y = data
        if x.is_meta or y.is_meta:
            raise sc.error("data is on the meta device, which holds shapes but no values; create it with values", "data")
        if x.dim() > 0 and y.dim() > 0 and x.shape[0] != y.shape[0]:
            raise sc.error(
                f"data has {x.shape[0]} inputs but {y.shape[0]} targets (shapes {tuple(x.shape)} and {tuple(y.shape)}); "
                "give one target per input",
                "data",
            )
        sc.full_batch = (x.to(sc.device), y.to(sc.device))
        return
    if isinstance(data, (tuple, list)) and len(data) == 2 and any(isinstance(d, np.ndarray) for d in data):
        raise sc.error("data holds numpy arrays; convert them with torch.from_numpy(...) or torch.tensor(...)", "data")
    if isinstance(data, torch.Tensor):
        raise sc.error("data is one tensor; set data = (inputs, targets)", "data")
    if isinstance(data, (str, bytes, dict)) or not isinstance(data, Iterable):
        raise sc.error(
            f"data is {a_type(data)}; set data = (inputs, targets) or a DataLoader of (inputs, targets) batches",
            "data",
        )
    if isinstance(data, Iterator):  # calling iter() here would draw from the RNG
        raise sc.error("data is a one-shot iterator, which cannot be re-iterated each epoch; use a list or a DataLoader", "data")
    sc.batches = data


def _trained_tensor_names(ns: dict[str, Any], sc: Scenario, tensors: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    """Names for the optimizer's tensors: ``params``, the model's, the module's variables, else p0, p1, …"""
    names: dict[int, str] = {}
    given = ns.get("params")
    if given is not None:
        if not isinstance(given, dict):
            # A tutorial's own `params = [w, b]` meets gdtui's reserved name: say whose name it is.
            raise sc.error(
                f"`params` is a name gdtui reads, as a dict of display name -> trained tensor, but here it is "
                f"{a_type(given)}; rename the variable (e.g. `parameters`) everywhere the file uses it, "
                "or make it a dict such as params = {'w': w}",
                "params",
            )
        held = {id(t) for t in tensors}
        for name, t in given.items():
            if not isinstance(t, torch.Tensor):
                raise sc.error(f"params[{name!r}] is {a_type(t)}, not a tensor; map each name to a trained tensor", "params")
            if id(t) not in held:
                raise sc.error(f"params[{name!r}] is not held by the optimizer, so it would never be updated; add it to the optimizer", "params")
            names[id(t)] = str(name)
    if isinstance(sc.model, nn.Module):
        for name, p in sc.model.named_parameters():
            names.setdefault(id(p), name)
    for var, value in ns.items():
        if isinstance(value, torch.Tensor) and not var.startswith("__"):
            names.setdefault(id(value), var)
    out: dict[str, torch.Tensor] = {}
    for i, t in enumerate(tensors):
        name = names.get(id(t), f"p{i}")
        while name in out:
            name += "'"
        out[name] = t
    return out


def _read_optimizer(ns: dict[str, Any], sc: Scenario) -> list[torch.Tensor]:
    opt = ns.get("optimizer")
    lr = ns.get("lr")
    if lr is not None and (isinstance(lr, bool) or not isinstance(lr, Real) or not lr > 0):
        raise sc.error(f"lr is {lr!r}; set it to a positive number such as lr = 0.01", "lr")
    if opt is None:
        if lr is None:
            raise ScenarioError(
                "no `optimizer` and no `lr`; define optimizer = torch.optim.SGD(params, lr=0.01), or just lr = 0.01",
                sc.path,
            )
        given = ns.get("params")
        if isinstance(given, dict) and given:
            tensors = list(given.values())
        elif isinstance(sc.model, nn.Module):
            tensors = [p for p in sc.model.parameters() if p.requires_grad]
        else:
            tensors = [v for k, v in ns.items() if isinstance(v, torch.Tensor) and v.requires_grad and v.is_leaf and not k.startswith("__")]
        if not tensors:
            raise sc.error("lr is set but no tensor requires grad; create the trained tensors with requires_grad=True", "lr")
        try:
            opt = torch.optim.SGD(tensors, lr=float(lr))
        except (ValueError, TypeError) as exc:
            raise sc.error(f"cannot make torch.optim.SGD over the trained tensors: {one_line(exc)}", "params", "lr") from None
        sc.made_optimizer = True
    elif not isinstance(opt, torch.optim.Optimizer):
        raise sc.error(f"optimizer is {a_type(opt)}, not a torch.optim.Optimizer; build one over the trained tensors", "optimizer")
    else:
        sc.manual_lr = float(lr) if lr is not None else None
    sc.optimizer = opt
    tensors = [p for group in opt.param_groups for p in group["params"]]
    if not tensors:
        raise sc.error("the optimizer holds no tensors; pass it the trained tensors", "optimizer")
    return tensors


def load_scenario(path: str | Path, *, seed: int = 0, device: str | torch.device = "cpu",
                  file: str | Path | None = None, args: Sequence[str] = ()) -> Scenario:
    """Execute and check a scenario. Raises ScenarioError, one line, on any problem.

    ``file``: where to read ``path`` from, when the working directory may have changed since
    the user named it (see :func:`execute`). ``args``: the scenario's ``sys.argv[1:]``.

    The checks here need no step; :class:`gdtui.engine.loop.Loop` then runs one
    forward, loss and backward on a snapshot to check the loss and the gradients.
    """
    path = Path(path)
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    ns, tree = execute(path, seed, dev, None if file is None else Path(file), args)
    doc = ast.get_docstring(tree) or ""
    title, _, description = doc.strip().partition("\n")
    sc = Scenario(
        path=path,
        seed=seed,
        device=dev,
        title=title.strip() or path.stem,
        description=description.strip(),
        namespace=ns,
        lines=_definition_lines(tree),
        params={},
        optimizer=None,  # type: ignore[arg-type]  # set by _read_optimizer
        tree=tree,
    )
    model, loss_fn, objective = ns.get("model"), ns.get("loss_fn"), ns.get("loss")
    if model is not None:
        if not callable(model):
            raise sc.error(f"model is {a_type(model)}; make it an nn.Module or a function of the inputs", "model")
        if loss_fn is None:
            raise sc.error("model is defined but loss_fn is not; add loss_fn = torch.nn.MSELoss() or def loss_fn(pred, target): ...", "model")
        if not callable(loss_fn):
            raise sc.error(f"loss_fn is {a_type(loss_fn)}; make it a function loss_fn(pred, target)", "loss_fn")
        if isinstance(model, nn.Module):
            on_meta = next((n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta), None)
            if on_meta is not None:
                raise sc.error(f"the model's {on_meta} is on the meta device, which holds shapes but no values; "
                               "build the model on a real device, or call model.to_empty(device='cpu') and initialise it",
                               "model")
            model.to(dev)
        sc.model, sc.loss_fn = model, loss_fn
        _read_data(ns, sc)
    elif objective is not None:
        if isinstance(objective, torch.Tensor):
            raise sc.error("loss is a tensor computed once at load time; make it a function: def loss(): return ...", "loss")
        if not callable(objective):
            raise sc.error(f"loss is {a_type(objective)}; make it a zero-argument function returning the objective", "loss")
        sc.objective = objective
    else:
        raise ScenarioError(
            "defines neither `model` (with `loss_fn` and `data`) nor `loss`; define them, see the scenario contract in docs/scenarios.md",
            path,
        )
    tensors = _read_optimizer(ns, sc)
    sc.params = _trained_tensor_names(ns, sc, tensors)
    for name, t in sc.params.items():
        var = name if name in sc.lines else "optimizer"
        if not t.requires_grad:
            raise sc.error(f"trained tensor `{name}` does not require grad; create it with requires_grad=True", var, "params")
        if not t.is_leaf:
            raise sc.error(f"trained tensor `{name}` is not a leaf (it was computed from other tensors); use .detach().requires_grad_()", var)
        if t.is_meta:
            raise sc.error(f"trained tensor `{name}` is on the meta device, which holds a shape but no values; "
                           "create it with values (torch.zeros, torch.randn)", var)
        if t.is_complex():
            raise sc.error(f"trained tensor `{name}` is complex ({str(t.dtype).removeprefix('torch.')}); gdtui trains real "
                           "tensors only: train torch.view_as_real(z) as a real tensor and use torch.view_as_complex(...) "
                           "in the loss", var)
        if t.device != dev:
            raise sc.error(
                f"trained tensor `{name}` is on {t.device} but --device is {dev}; create it with torch.tensor/zeros/randn, "
                "which follow --device, rather than torch.from_numpy",
                var,
            )
    mode = ns.get("mode", "optim")
    if mode not in ("manual", "optim"):
        raise sc.error(f"mode is {mode!r}; use 'manual' or 'optim'", "mode")
    sc.mode = mode
    grad_fn = ns.get("grad_fn")
    if grad_fn is not None and not callable(grad_fn):
        raise sc.error(f"grad_fn is {a_type(grad_fn)}; make it a function with no arguments", "grad_fn")
    sc.grad_fn = grad_fn
    metrics = ns.get("metrics") or {}
    if not isinstance(metrics, dict) or not all(callable(f) for f in metrics.values()):
        raise sc.error("metrics must be a dict of name -> fn(pred, target)", "metrics")
    if metrics and sc.objective is not None:
        raise sc.error("metrics need a model and data; remove them or define model, loss_fn and data", "metrics")
    sc.metrics = {str(k): f for k, f in metrics.items()}
    steps = ns.get("steps")
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 0):
        raise sc.error(f"steps is {steps!r}; set it to a whole number of steps", "steps")
    sc.steps = steps
    _read_scheduler(ns, sc)
    return sc


def _read_scheduler(ns: dict[str, Any], sc: Scenario) -> None:
    scheduler = ns.get("scheduler")
    interval = ns.get("scheduler_interval", "step")
    if scheduler is None:
        if "scheduler_interval" in ns:
            raise sc.error("scheduler_interval is set but there is no scheduler; define scheduler = "
                           "torch.optim.lr_scheduler.StepLR(optimizer, ...) or remove it", "scheduler_interval")
        return
    if isinstance(scheduler, ReduceLROnPlateau) or not isinstance(scheduler, LRScheduler):
        what = "ReduceLROnPlateau, which needs a metric at each step()" if isinstance(scheduler, ReduceLROnPlateau) else a_type(scheduler)
        raise sc.error(f"scheduler is {what}; make it a torch.optim.lr_scheduler such as StepLR(optimizer, 10), "
                       "or step it yourself under another name", "scheduler")
    if scheduler.optimizer is not sc.optimizer:
        raise sc.error("scheduler drives another optimizer than `optimizer`; build it over optimizer", "scheduler")
    if interval not in ("step", "epoch"):
        raise sc.error(f"scheduler_interval is {interval!r}; use 'step' (after each optimizer step) or 'epoch'",
                       "scheduler_interval")
    sc.scheduler, sc.scheduler_interval = scheduler, interval
