"""The example scenarios gdtui ships: ``gdtui examples`` lists them, ``gdtui example NAME`` opens one.

They are read where they lie: the ``scenarios/`` folder beside the package in a checkout. Listing
them reads each file's docstring without running it, so it needs no torch.
"""

from __future__ import annotations

import ast
import difflib
from pathlib import Path

#: The checkout's scenarios, whose ``parent.parent / "data"`` paths find the data they read.
FOLDER = Path(__file__).resolve().parent.parent / "scenarios"


def names() -> list[str]:
    """Every example's name: its file name without ``.py``, sorted."""
    return sorted(path.stem for path in FOLDER.glob("*.py") if not path.name.startswith("_"))


def find(name: str) -> Path | None:
    """The example called NAME (``not_gate`` or ``not_gate.py``), or None."""
    stem = name.removesuffix(".py")
    return FOLDER / f"{stem}.py" if stem in names() else None


def unknown(name: str) -> str:
    """The one line for a name that is no example: the closest names, and where the list is."""
    close = difflib.get_close_matches(name.removesuffix(".py"), names(), n=3)
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    return f"gdtui example {name}: no example has that name; {hint}gdtui examples lists them"


def summary(path: Path) -> str:
    """The first line of the file's docstring, or "" when it has none or does not parse."""
    try:
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
        return ""
    return doc.strip().splitlines()[0] if doc and doc.strip() else ""


def listing() -> str:
    """The table ``gdtui examples`` prints: name and summary, then how to open one."""
    found = names()
    if not found:
        return f"no examples in {FOLDER}"
    width = max(map(len, found))
    rows = [f"{name:<{width}}  {summary(FOLDER / f'{name}.py')}".rstrip() for name in found]
    return "\n".join([*rows, "", "open one: gdtui example NAME [options] [-- ARGS]   (gdtui --help lists the options)"])
