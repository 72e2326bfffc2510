"""Whether a file is a scenario or a training script, read from its source without running it.

Torch-free: the command line asks before it decides whether to load torch in this process.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

#: The names that make a file a scenario (docs/scenarios.md): a model and its loss function, or a loss.
_CONTRACT = ({"model", "loss_fn"}, {"loss"})


def _module_level_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
    return names


def _calls_at_top(tree: ast.Module, attributes: set[str]) -> bool:
    """Whether a module-level statement (outside function and class bodies) calls ``.NAME(...)``."""
    stack: list[ast.AST] = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in attributes:
            return True
        stack.extend(ast.iter_child_nodes(node))
    return False


def _has_main_guard(tree: ast.Module) -> bool:
    return any(isinstance(n, ast.If) and "__name__" in {m.id for m in ast.walk(n.test) if isinstance(m, ast.Name)}
               for n in tree.body)


def _calls_anywhere(tree: ast.Module, attributes: set[str]) -> bool:
    return any(isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr in attributes
               for n in ast.walk(tree))


def is_scenario_file(path: str | Path) -> bool:
    """Whether ``path`` reads as a scenario rather than a training script, without running it.

    A training script calls ``.step()`` or ``.backward()`` somewhere; a file that calls neither
    is a scenario (or a file the scenario's checks explain). One that does is still a scenario
    when it binds the contract's names at module level, has no ``if __name__ == "__main__":``
    block and calls neither at module level (a scenario's loss function may). A file that cannot
    be read or parsed goes the scenario's way, whose errors name it."""
    try:
        tree = ast.parse(Path(path).read_bytes())
    except (OSError, SyntaxError, ValueError):
        return True
    trains = {"step", "backward"}
    if not _calls_anywhere(tree, trains):
        return True
    names = _module_level_names(tree)
    if not any(contract <= names for contract in _CONTRACT):
        return False
    return not _has_main_guard(tree) and not _calls_at_top(tree, trains)


def defines_scenario(namespace: dict[str, Any]) -> bool:
    """Whether a file's globals, once it ran, hold the scenario contract's names."""
    return any(all(namespace.get(n) is not None for n in contract) for contract in _CONTRACT)
