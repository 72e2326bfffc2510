"""Stop conditions: small expressions over a step's numbers, such as ``loss < 0.001``.

An expression is parsed with :mod:`ast` when it is entered and checked against
what it may use, so a typo is an error at once, not at step 10 000. It is then
evaluated by walking its tree: there is no ``eval``. It may use:

- ``step``, ``epoch``, ``batch``, ``loss``, ``lr``, ``loss_delta`` (this step's
  loss minus the previous one), and each metric by name;
- ``grad_norm`` (the global gradient norm) and ``grad_norm["w"]``,
  ``param_norm["w"]``, ``update_ratio["w"]`` for one trained tensor;
- numbers, ``+ - * / ** %``, comparisons (chains too), ``and``, ``or``, ``not``;
- ``abs``, ``min``, ``max``, ``sqrt``, ``log10``, ``isnan``, ``isinf``, ``isfinite``.

Evaluation is bounded, because it runs after every step in the step worker and
a huge integer power there holds the interpreter (keys and signals included)
until it ends: every number is a float, so ``9**9**9`` is ``inf`` at once; an
expression is at most :data:`MAX_CHARS` characters and :data:`MAX_DEPTH`
levels deep; and each function call is checked for its number of arguments.
"""

from __future__ import annotations

import ast
import math
import operator
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from gdtui.engine.records import StepRecord

SCALARS = ("step", "epoch", "batch", "loss", "lr", "loss_delta", "grad_norm")
TABLES = ("grad_norm", "param_norm", "update_ratio")
FUNCTIONS = {
    "abs": abs,
    "min": min,
    "max": max,
    "sqrt": lambda x: math.sqrt(x) if x >= 0 else math.nan,
    "log10": lambda x: math.log10(x) if x > 0 else (-math.inf if x == 0 else math.nan),
    "isnan": math.isnan,
    "isinf": math.isinf,
    "isfinite": math.isfinite,
}
#: How many arguments each function takes: (fewest, most); None is "no limit".
ARITY = {name: (1, 1) for name in FUNCTIONS} | {"min": (2, None), "max": (2, None)}
#: The longest expression accepted, in characters, and its deepest nesting.
MAX_CHARS = 1000
MAX_DEPTH = 100
_BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
    ast.Mod: operator.mod,
}
_COMPARE = {
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}


class ConditionError(ValueError):
    """An expression that cannot be a stop condition; the message says why, in one line."""


@dataclass(frozen=True)
class Condition:
    """A checked expression. ``holds(env)`` evaluates it over a step's numbers."""

    text: str
    tree: ast.Expression
    #: "until" (the goal: a run stops there) or "break" (a breakpoint: a run pauses there).
    kind: str = "break"

    def holds(self, env: dict[str, Any]) -> bool:
        try:
            return bool(_evaluate(self.tree.body, env))
        except (ArithmeticError, ValueError, TypeError):
            return False


def parse_condition(
    text: str, *, metrics: Iterable[str] = (), tensors: Iterable[str] = (), kind: str = "break"
) -> Condition:
    """Parse and check ``text``; raise ConditionError naming the problem and what is allowed."""
    metrics, tensors = set(metrics), set(tensors)
    if len(text.strip()) > MAX_CHARS:
        raise ConditionError(f"{text.strip()[:40]!r}…: {len(text.strip())} characters is too long for a stop condition; "
                             f"keep it under {MAX_CHARS}, or split it into several breakpoints")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ConditionError(f"{text!r}: {exc.msg} at column {exc.offset}; write a comparison such as loss < 0.001") from None
    except (RecursionError, MemoryError):
        raise ConditionError(f"{text.strip()[:40]!r}…: nested too deeply; keep it under {MAX_DEPTH} levels") from None
    if _depth(tree) > MAX_DEPTH:
        raise ConditionError(f"{text.strip()[:40]!r}…: nested more than {MAX_DEPTH} levels deep; write it more simply, "
                             "or split it into several breakpoints")
    names = set(SCALARS) | metrics
    subscripts = [n for n in ast.walk(tree) if isinstance(n, ast.Subscript)]
    keys = {id(n.slice) for n in subscripts}
    indexed = {id(n.value) for n in subscripts}
    called = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    for node in ast.walk(tree):
        _check_node(node, text, names, tensors)
        if isinstance(node, ast.Name) and node.id in FUNCTIONS and node.id not in names and id(node) not in called:
            raise ConditionError(f"{text!r}: {node.id} is a function; call it, as in {_example(node.id)}")
        if isinstance(node, ast.Name) and node.id in ("param_norm", "update_ratio") and id(node) not in indexed:
            raise ConditionError(f"{text!r}: {node.id} needs a tensor name, as in {node.id}[\"w\"]")
        if isinstance(node, ast.Constant) and id(node) not in keys:
            if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
                raise ConditionError(f"{text!r}: {node.value!r} is not a number; compare with numbers")
    return Condition(text.strip(), tree, kind)


def _check_node(node: ast.AST, text: str, names: set[str], tensors: set[str]) -> None:
    allowed = (
        ast.Expression, ast.Compare, ast.BoolOp, ast.UnaryOp, ast.BinOp, ast.Constant, ast.Name,
        ast.Subscript, ast.Call, ast.Load, ast.And, ast.Or, ast.Not, ast.USub, ast.UAdd,
        *_BINARY, *_COMPARE,
    )
    if not isinstance(node, allowed):
        raise ConditionError(f"{text!r}: {type(node).__name__} is not allowed; use numbers, names, arithmetic and comparisons")
    if isinstance(node, ast.Name) and node.id not in names and node.id not in TABLES and node.id not in FUNCTIONS:
        known = ", ".join(sorted(names | set(TABLES)))
        raise ConditionError(f"{text!r}: unknown name {node.id!r}; use one of {known}")
    if isinstance(node, ast.Subscript):
        table = node.value.id if isinstance(node.value, ast.Name) else None
        key = node.slice.value if isinstance(node.slice, ast.Constant) else None
        if table not in TABLES or not isinstance(key, str):
            raise ConditionError(f"{text!r}: only grad_norm[\"name\"], param_norm[\"name\"] and update_ratio[\"name\"] can be indexed")
        if key not in tensors:
            raise ConditionError(f"{text!r}: no trained tensor {key!r}; the tensors are {', '.join(sorted(tensors))}")
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS or node.keywords:
            raise ConditionError(f"{text!r}: only {', '.join(FUNCTIONS)} can be called")
        fewest, most = ARITY[node.func.id]
        if not fewest <= len(node.args) <= (most if most is not None else len(node.args)):
            wanted = f"{fewest} argument" if fewest == most else f"{fewest} or more arguments"
            raise ConditionError(f"{text!r}: {node.func.id} takes {wanted}, not {len(node.args)}; "
                                 f"write {_example(node.func.id)}")


def _example(function: str) -> str:
    return f"{function}(loss, 1)" if ARITY[function][1] is None else f"{function}(loss)"


def _depth(tree: ast.Expression) -> int:
    """How deeply the expressions of ``tree`` nest, counted without recursion (the tree may be deep)."""
    deepest, stack = 0, [(tree.body, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node) if isinstance(child, ast.expr))
    return deepest


def _number(value: Any) -> Any:
    """An int or bool as a float, so no operation can build a huge integer; other values as they are."""
    if isinstance(value, int):
        try:
            return float(value)
        except OverflowError:
            return math.inf if value > 0 else -math.inf
    return value


def _power(base: float, exponent: float) -> float:
    """``base ** exponent`` in floats, as IEEE 754's pow: inf on overflow, NaN where undefined (never complex)."""
    try:
        return math.pow(base, exponent)
    except OverflowError:
        odd = exponent.is_integer() and exponent % 2 == 1
        return -math.inf if base < 0 and odd else math.inf
    except ValueError:  # 0 to a negative power, or a negative base to a fractional one
        return math.inf if base == 0 else math.nan


def _evaluate(node: ast.AST, env: dict[str, Any]) -> Any:
    if isinstance(node, ast.Constant):
        return _number(node.value)
    if isinstance(node, ast.Name):
        return _number(env[node.id])
    if isinstance(node, ast.Subscript):
        return _number(env["tables"][node.value.id][node.slice.value])
    if isinstance(node, ast.UnaryOp):
        value = _evaluate(node.operand, env)
        if isinstance(node.op, ast.Not):
            return not value
        value = _number(value)
        return -value if isinstance(node.op, ast.USub) else +value
    if isinstance(node, ast.BinOp):
        left, right = _number(_evaluate(node.left, env)), _number(_evaluate(node.right, env))
        if isinstance(node.op, ast.Pow):
            return _power(left, right)
        try:
            return _BINARY[type(node.op)](left, right)
        except ZeroDivisionError:
            if isinstance(node.op, ast.Mod):
                return math.nan
            return math.nan if left == 0 else math.copysign(math.inf, left)
        except OverflowError:
            return math.inf
    if isinstance(node, ast.BoolOp):
        if isinstance(node.op, ast.And):
            return all(_evaluate(v, env) for v in node.values)
        return any(_evaluate(v, env) for v in node.values)
    if isinstance(node, ast.Compare):
        left = _evaluate(node.left, env)
        for op, right_node in zip(node.ops, node.comparators):
            right = _evaluate(right_node, env)
            if not _COMPARE[type(op)](left, right):
                return False
            left = right
        return True
    if isinstance(node, ast.Call):
        return FUNCTIONS[node.func.id](*(_number(_evaluate(a, env)) for a in node.args))
    raise TypeError(type(node).__name__)


def record_env(record: StepRecord, previous_loss: float | None) -> dict[str, Any]:
    """The names a condition sees after ``record``'s step."""
    env: dict[str, Any] = {
        "step": record.step,
        "epoch": record.epoch if record.epoch is not None else math.nan,
        "batch": record.batch if record.batch is not None else math.nan,
        "loss": record.loss,
        "lr": record.lr,
        "loss_delta": record.loss - previous_loss if previous_loss is not None else math.nan,
        "grad_norm": record.grad_norm,
        "tables": {
            "grad_norm": {n: (g.norm if g is not None else 0.0) for n, g in record.grads.items()},
            "param_norm": {n: p.norm for n, p in record.params.items()},
            "update_ratio": {n: record.update_ratio(n) for n in record.params},
        },
    }
    env.update(record.metrics)
    return env


class RisingLoss:
    """The built-in condition "the loss rose ``k`` steps in a row"."""

    def __init__(self, k: int):
        if k < 1:
            raise ConditionError(f"the loss must rise at least 1 step in a row, not {k}")
        self.k = k
        self.text = f"loss rose {k} steps in a row"
        self.kind = "break"

    def holds_for(self, losses: Sequence[float]) -> bool:
        recent = losses[-(self.k + 1) :]
        return len(recent) == self.k + 1 and all(b > a for a, b in zip(recent, recent[1:]))


_RISING = re.compile(r"loss rose (\d+) steps? in a row")


def rising_from_text(text: str) -> RisingLoss | None:
    """The built-in condition that ``text`` names (RisingLoss.text), or None for any other text."""
    match = _RISING.fullmatch(text.strip())
    return RisingLoss(int(match.group(1))) if match else None
