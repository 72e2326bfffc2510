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


def is_scenario_file(path: str | Path) -> bool:
    """Whether ``path`` reads as a scenario rather than a training script, without running it:
    it binds the scenario contract's names at module level, has no ``if __name__ == "__main__":``
    block, and steps nothing at module level (no ``.step()`` or ``.backward()`` call outside its
    functions). A file that cannot be read or parsed goes the scenario's way, whose errors name it."""
    try:
        tree = ast.parse(Path(path).read_bytes())
    except (OSError, SyntaxError, ValueError):
        return True
    names = _module_level_names(tree)
    if not any(contract <= names for contract in _CONTRACT):
        return False
    return not _has_main_guard(tree) and not _calls_at_top(tree, {"step", "backward"})


def defines_scenario(namespace: dict[str, Any]) -> bool:
    return any(all(namespace.get(n) is not None for n in contract) for contract in _CONTRACT)
