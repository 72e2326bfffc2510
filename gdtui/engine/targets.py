"""Where a trace or an export may be written: never over the scenario, never over a device.

A path is compared with the files it must not replace by resolved path and, where
both exist, by device and inode (a hard link or a bind mount names the same file
by another path). An export replaces its target with a rename, so it refuses
anything that is not a regular file; a symlink is followed, and its target is
replaced in its own folder. A trace is appended to as the run goes, so it may
also go to a device or a FIFO (``/dev/null``, a reader's pipe).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path


class TargetError(Exception):
    """A target that must not be written; one line saying why and what to do."""


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether ``a`` and ``b`` name one file: the same resolved path, or the same device and inode."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return False


def _kind(mode: int) -> str | None:
    """What a file that is not a regular file is, in words; None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def refuse_kept(path: str | Path, kept: Iterable[tuple[str | Path | None, str]], shown: str | None = None) -> None:
    """Raise TargetError when ``path`` is one of ``kept``: (a file, what it is, e.g. "the scenario")."""
    for other, what in kept:
        if other is not None and same_file(path, other):
            raise TargetError(f"{shown or path} is {what}; writing there would destroy it: choose another path")


def export_target(path: str | Path, kept: Iterable[tuple[str | Path | None, str]] = (),
                  shown: str | None = None) -> Path:
    """The regular file an export to ``path`` replaces (a symlink's resolved target), which need not exist.

    Raises TargetError when it is one of ``kept`` or exists and is not a regular file; the
    message names ``path`` as ``shown`` (default: as given).
    """
    shown = shown or str(path)
    path = Path(path).expanduser()
    refuse_kept(path, kept, shown)
    real = Path(os.path.realpath(path))
    try:
        mode = os.stat(real).st_mode
    except OSError:  # not there yet (or unreadable: the write says why)
        return real
    kind = _kind(mode)
    if kind is not None:
        raise TargetError(f"{shown} is {kind}, not a regular file; an export would replace it: "
                          "choose a file path (nothing was changed)")
    return real
