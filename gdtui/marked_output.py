"""The trainer's output stream, as lines marked with the step they were written in.

The trainer's fds 1 and 2 are a pseudo-terminal. Its main thread writes a private escape sequence
(:data:`MARK`) into it at each step's start, and sync marks (negative numbers) when a command's
output must be all read before its last event. :class:`MarkedLines` turns the bytes read from the
pseudo-terminal's other end into ``(step, line)`` pairs and the sync numbers seen. Whoever reads
the pseudo-terminal uses it: the trainer while no client is attached, the attached client
otherwise (gdtui.client), so a line the user's code wrote is never held in the trainer's memory
when the trainer dies. Imports no torch and no textual.
"""

from __future__ import annotations

import re

#: Written into the pseudo-terminal by the trainer's main thread: the step the output after it
#: belongs to (a negative number: a sync mark).
MARK = b"\x1b]5757;gdtui-step=%d\x07"
MARK_PATTERN = re.compile(rb"\x1b\]5757;gdtui-step=(-?\d+)\x07")
#: A partial line longer than this is taken as it stands.
LONG_LINE = 1 << 16


class MarkedLines:
    """Bytes in, marked lines out. ``step`` is the step of the text that follows; ``partial``
    the bytes of a line not ended yet (or of a mark cut in two by a read)."""

    def __init__(self, step: int = 0, partial: bytes = b""):
        self.step = step
        self.partial = partial

    def feed(self, data: bytes, final: bool = False) -> tuple[list[tuple[int, str]], int | None]:
        """The whole lines of what was read so far, and the highest sync number among the marks
        in it (None: none). ``final``: the stream ended; a line not ended is taken too."""
        lines: list[tuple[int, str]] = []
        synced = None
        buffer = self.partial + data
        pos = 0
        for match in MARK_PATTERN.finditer(buffer):
            self._split(buffer[pos:match.start()], lines, final=True)
            n = int(match.group(1))
            if n < 0:
                synced = max(synced or 0, -n)
            else:
                self.step = n
            pos = match.end()
        rest = buffer[pos:]
        if final:
            self._split(rest, lines, final=True)
            return lines, synced
        keep_from = rest.rfind(b"\n") + 1
        self._split(rest[:keep_from], lines, final=False)
        tail = rest[keep_from:]
        escape = tail.rfind(b"\x1b")
        cut_mark = escape >= 0 and len(tail) - escape < 32  # perhaps a mark cut in two by the read
        if len(tail) > LONG_LINE and not cut_mark:
            self._split(tail, lines, final=True)
        else:
            self.partial = tail
        return lines, synced

    def _split(self, chunk: bytes, lines: list, final: bool) -> None:
        """Whole lines of ``chunk`` to ``lines``; the rest kept, or taken too when ``final``."""
        *whole, rest = chunk.split(b"\n")
        for line in whole:
            lines.append((self.step, line.rstrip(b"\r").decode("utf-8", "replace")))
        if final and rest:
            lines.append((self.step, rest.rstrip(b"\r").decode("utf-8", "replace")))
            rest = b""
        self.partial = rest
