"""Headless output in a locale that cannot encode gdtui's symbols (issue 12 case 19).

Reference: fit_2x's gradients written out by hand (X = 1..4, y = 2X, w = 0, lr 0.01).
"""

from __future__ import annotations

import io
import os
import subprocess
import sys

from gdtui.engine.ascii import fall_back_to_ascii
from tests.paths import ROOT, SCENARIOS


def accumulated_grad_norms(steps: int) -> list[float]:
    """|g| with zero_grad skipped: the gradient of mean((w x - y)^2) is mean(2 x (w x - y)), summed over steps."""
    xs = [1.0, 2.0, 3.0, 4.0]
    w, total, norms = 0.0, 0.0, []
    for _ in range(steps):
        total += sum(2 * x * (w * x - 2 * x) for x in xs) / len(xs)
        norms.append(abs(total))
        w -= 0.01 * total
    return norms


def test_hints_and_reports_fall_back_to_ascii_in_a_c_locale():
    """Issue 12 case 19: with LC_ALL=C PYTHONUTF8=0, `--hints` raised UnicodeEncodeError at the first ‖g‖."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0"}
    env.pop("PYTHONIOENCODING", None)
    done = subprocess.run([sys.executable, "-m", "gdtui", str(SCENARIOS / "fit_2x.py"), "--headless", "--steps", "3",
                           "--hints", "--no-zero-grad", "--compare"], capture_output=True, timeout=120, env=env, cwd=ROOT)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    out = done.stdout.decode("ascii")  # raises if a byte is not ASCII
    assert done.stderr == b""
    for g in accumulated_grad_norms(3):  # 30, 55.5, 72.7
        assert f"each step adds its gradient to the last (|g| now {g:.3g})" in out
    assert "manual (p -= 0.01 x grad) vs SGD.step()" in out


def test_only_streams_that_cannot_encode_the_symbols_change():
    """Issue 12 case 19: a UTF-8 terminal keeps ‖g‖; an ASCII one gets |g|, accents dropped, the rest as ?."""
    utf8 = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    ascii_ = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
    fall_back_to_ascii(utf8, ascii_)
    for stream in (utf8, ascii_):
        stream.write("‖g‖ → 3×, café 🙂\n")
        stream.flush()
    assert utf8.buffer.getvalue().decode("utf-8") == "‖g‖ → 3×, café 🙂\n"
    assert ascii_.buffer.getvalue() == b"|g| -> 3x, cafe ?\n"
