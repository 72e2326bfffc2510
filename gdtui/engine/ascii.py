"""ASCII for a terminal that cannot show gdtui's symbols (a C or POSIX locale, an old SSH server).

The headless lines, hints and reports use a few symbols (‖g‖, Δ, ×, →, β̂).
Where the output stream's encoding lacks them, :func:`fall_back_to_ascii`
makes the stream write each one as its ASCII spelling, and any other such
character as ``?``, instead of raising UnicodeEncodeError mid-run.
"""

from __future__ import annotations

import codecs
import unicodedata
from typing import TextIO

SPELLINGS = {
    "‖": "|", "Δ": "d", "×": "x", "÷": "/", "·": ".", "…": "...", "−": "-", "—": "-", "–": "-",
    "→": "->", "≈": "~", "±": "+/-", "≤": "<=", "≥": ">=", "√": "sqrt", "²": "^2", "₂": "2",
    "β": "beta", "ε": "eps", "σ": "sigma", "μ": "mu", "⚠": "!", "\u0302": "^",  # the hat of m̂
}
ERRORS = "gdtui-ascii"


def _spell(error: UnicodeError) -> tuple[str | bytes, int]:
    if not isinstance(error, UnicodeEncodeError):
        raise error
    text = error.object[error.start : error.end]
    if all("\udc80" <= c <= "\udcff" for c in text):  # bytes Python could not decode (surrogateescape): as they were
        return bytes(ord(c) - 0xDC00 for c in text), error.end
    spelled = "".join(SPELLINGS.get(c) or _plain_letter(c) for c in text)
    return spelled, error.end


def _plain_letter(c: str) -> str:
    """``é`` as ``e``: the letter without its accents, else ``?``."""
    base = "".join(b for b in unicodedata.normalize("NFKD", c) if b.isascii())
    return base or "?"


codecs.register_error(ERRORS, _spell)


def fall_back_to_ascii(*streams: TextIO) -> None:
    """Reconfigure each stream that cannot encode ``‖`` to spell gdtui's symbols in ASCII."""
    for stream in streams:
        encoding = getattr(stream, "encoding", None) or "ascii"
        try:
            "‖Δ×".encode(encoding)
        except UnicodeEncodeError:
            if hasattr(stream, "reconfigure"):
                stream.reconfigure(errors=ERRORS)
        except LookupError:
            pass
