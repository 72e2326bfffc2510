"""The layout of tests/ holds: engine/ needs no textual, and tests share helpers, not test modules.

The imports are read from the source (every import statement, a function's own included), and each
module they name is imported in a fresh interpreter in which textual cannot be imported: a module
that reaches it, however indirectly, fails there and is named.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

from tests.paths import ROOT, TESTS

UI = ("textual", "textual_plotext")


def imported_names(path: Path) -> set[str]:
    """Every module an import statement of ``path`` names, and each name taken from one (it may be a
    submodule: ``from gdtui import jobs``)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names if alias.name != "*")
    return names


def engine_modules() -> list[Path]:
    return sorted((TESTS / "engine").glob("*.py"))


def test_no_engine_test_module_imports_textual():
    """Issue 13: every module under tests/engine (tests and their helpers) imports no textual, itself
    or through a gdtui or tests module it imports; the screen's tests are in tests/app."""
    named: dict[str, list[str]] = {}
    for path in engine_modules():
        for name in imported_names(path):
            named.setdefault(name, []).append(path.name)
    direct = sorted(f"{where}: {name}" for name, wheres in named.items() for where in wheres
                    if name.split(".")[0] in UI or name.startswith("tests.app"))
    assert direct == [], "tests/engine imports the screen's side; move these tests to tests/app"

    ours = sorted(name for name in named if name.split(".")[0] in ("gdtui", "tests"))
    code = (
        "import importlib, importlib.util, json, sys\n"
        f"for ui in {UI!r}: sys.modules[ui] = None  # importing it now raises ImportError\n"
        "reached = []\n"
        "for name in json.loads(sys.argv[1]):\n"
        "    try:\n"
        "        if importlib.util.find_spec(name) is None: continue\n"
        "        importlib.import_module(name)\n"
        "    except ImportError as exc:\n"
        f"        if (exc.name or '').split('.')[0] in {UI!r}: reached.append(name)\n"
        "        elif exc.name != name: raise\n"
        "print(json.dumps(reached))\n"
    )
    out = subprocess.run([sys.executable, "-c", code, json.dumps(ours)], capture_output=True, text=True, cwd=ROOT,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    reached = json.loads(out.stdout)
    assert reached == [], {name: named[name] for name in reached}


def test_no_test_module_imports_another_test_module_or_a_conftest():
    """Issue 13: fixtures live in conftest.py files and helpers in plain modules (tests.paths,
    tests.plain_loop, tests.app.pilot_helpers...): no module under tests/ imports a test module or
    a conftest, which breaks as soon as two folders each have one."""
    found = []
    for path in sorted(TESTS.rglob("*.py")):
        if "_scenarios" in path.parent.name:
            continue
        try:
            names = imported_names(path)
        except SyntaxError:
            continue
        for name in names:
            last = name.rsplit(".", 1)[-1]
            if last == "conftest" or (last.startswith("test_") and name.split(".")[0] in ("tests", last)):
                found.append(f"{path.relative_to(ROOT)}: {name}")
    assert found == []
