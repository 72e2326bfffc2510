"""The engine never imports textual: proven in a fresh interpreter for every engine module."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import gdtui.engine

MODULES = ["gdtui.engine"] + [f"gdtui.engine.{m.name}" for m in pkgutil.iter_modules(gdtui.engine.__path__)]
UI = ("textual", "textual_plotext", "plotext", "rich")


def test_importing_the_engine_imports_no_ui_library():
    code = (
        "import importlib, sys\n"
        f"for name in {MODULES!r}: importlib.import_module(name)\n"
        f"print(','.join(m for m in {UI!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"the engine imported {out.stdout.strip()}"


def test_the_headless_cli_imports_no_ui_library(tmp_path):
    code = (
        "import sys\n"
        "from gdtui.cli import main\n"
        "status = main(['scenarios/not_gate.py', '--headless', '--steps', '2', '--quiet'])\n"
        f"print(','.join(m for m in {UI!r} if m in sys.modules))\n"
        "sys.exit(status)\n"
    )
    from tests.paths import ROOT

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1] == "", out.stdout


def test_the_screen_imports_no_torch():
    """Issue 13: the app, its keys, its messages, its port and every widget module import no torch
    (and no engine module that does): only the in-process port, built by make_app, brings it."""
    import gdtui.widgets

    widgets = [f"gdtui.widgets.{m.name}" for m in pkgutil.iter_modules(gdtui.widgets.__path__)]
    screen = ["gdtui.app", "gdtui.control_keys", "gdtui.diagnostics_keys", "gdtui.messages", "gdtui.port",
              "gdtui.keys", *widgets]
    code = (
        "import importlib, sys\n"
        f"for name in {screen!r}: importlib.import_module(name)\n"
        "print(','.join(m for m in ('torch', 'numpy', 'gdtui.engine.session', 'gdtui.jobs') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"the screen imported {out.stdout.strip()}"
