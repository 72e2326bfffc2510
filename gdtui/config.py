"""The user's settings file: ``config.toml`` in gdtui's config folder, read once at start.

Where it is: ``$GDTUI_CONFIG`` when set, else ``platformdirs.user_config_path("gdtui")``
(``~/.config/gdtui/config.toml`` on Linux, ``~/Library/Application Support/gdtui/config.toml``
on macOS). A missing file is the defaults. A flag given on the command line wins over the file.
A bad file is one :class:`ConfigError` line naming the file, the line where TOML says, what is
wrong and how to fix it. This module imports no torch and no UI library.
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass, fields
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

#: A detached trainer that no screen reconnects to ends after this many minutes.
DETACH_TIMEOUT_MIN = 30.0


class ConfigError(Exception):
    """The settings file cannot be used: one line saying where, what and how to fix it."""


@dataclass(frozen=True, slots=True)
class Config:
    """The settings, each with its default. The file's keys are these names."""

    #: Minutes a trainer the step-debugger started waits for a screen after ``d`` or a hang-up
    #: (0 waits forever). ``--detach-timeout`` overrides it; ``--listen`` trainers wait forever.
    detach_timeout_minutes: float = DETACH_TIMEOUT_MIN


def config_path() -> Path:
    """Where the settings file is (it need not exist)."""
    given = os.environ.get("GDTUI_CONFIG")
    if given:
        return Path(given).expanduser()
    from platformdirs import user_config_path

    return user_config_path("gdtui") / "config.toml"


def _minutes(path: Path, key: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ConfigError(f"{path}: {key} = {value!r} is not a number of minutes; give 0 or more (0 waits forever)")
    return float(value)


def load(path: Path | None = None) -> Config:
    """The settings in PATH (default :func:`config_path`), or the defaults when there is no file."""
    path = config_path() if path is None else path
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Config()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "it is not UTF-8 text"
        raise ConfigError(f"{path}: cannot read it ({reason}); fix or remove the file") from None
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}; fix that line or remove the file") from None
    known = {f.name for f in fields(Config)}
    for key in table:
        if key not in known:
            raise ConfigError(f"{path}: unknown setting {key!r}; the settings are {', '.join(sorted(known))}")
    values = {}
    if "detach_timeout_minutes" in table:
        values["detach_timeout_minutes"] = _minutes(path, "detach_timeout_minutes", table["detach_timeout_minutes"])
    return Config(**values)
