"""How gdtui tells of a mistake in a scenario or its arguments: one line, ``path:line: what; how to fix``.

:class:`ScenarioError` is that line; :func:`error_from` makes one from an
exception the scenario's code raised, naming the scenario line it came from.
"""

from __future__ import annotations

import threading
import traceback
from pathlib import Path


class ScenarioError(Exception):
    """A problem with the user's scenario or arguments, told in one line."""

    def __init__(self, message: str, path: Path | str | None = None, line: int | None = None):
        self.message = message
        self.path = str(path) if path is not None else None
        self.line = line
        super().__init__(str(self))

    def __str__(self) -> str:
        if self.path is None:
            return self.message
        if self.line is None:
            return f"{self.path}: {self.message}"
        return f"{self.path}:{self.line}: {self.message}"


class StepError(Exception):
    """The scenario's code raised during a step; ``str()`` is one line with file and line."""

    def __init__(self, error: ScenarioError):
        self.error = error
        super().__init__(str(error))

    def at_step(self, step: int) -> StepError:
        """The same error, saying which step it stopped."""
        e = self.error
        return StepError(ScenarioError(f"step {step}: {e.message}", e.path, e.line))


def a_type(obj: object) -> str:
    """``a float``, ``an int``: the type of ``obj`` with its article."""
    name = type(obj).__name__
    return ("an " if name[:1].lower() in "aeiou" else "a ") + name


def one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def locate(exc: BaseException, path: Path) -> int | None:
    """The line of the innermost frame of ``exc``'s traceback that is in ``path``."""
    target = str(path)
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == target:
            line = frame.lineno
    if line is None and isinstance(exc, SyntaxError) and exc.filename == target:
        line = exc.lineno
    return line


def error_from(exc: BaseException, path: Path, doing: str = "", fallback_line: int | None = None) -> ScenarioError:
    """A one-line ScenarioError that names the scenario line ``exc`` came from."""
    if isinstance(exc, ScenarioError):
        return exc
    what = f"{type(exc).__name__}: {one_line(exc)}" if str(exc) else type(exc).__name__
    if doing:
        what = f"{doing} raised {what}"
    line = locate(exc, path) or fallback_line
    return ScenarioError(what, path, line)


def stops_the_run(exc: BaseException) -> bool:
    """Whether ``exc`` is Ctrl-C (or SIGTERM/SIGHUP, which gdtui.engine.headless raises as a
    KeyboardInterrupt), which ends the run, rather than a failure of the scenario's code to report.

    Python runs signal handlers on the main thread only: a KeyboardInterrupt on any other
    thread (the step-debugger's worker) was raised by the scenario's own code.
    """
    return isinstance(exc, KeyboardInterrupt) and threading.current_thread() is threading.main_thread()
