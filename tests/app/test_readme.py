"""The README and docs/ document what gdtui does: every key and every CLI flag, and their links hold.

The step-debugger's half (it needs textual); the headless half is tests/engine/test_readme.py.
"""

from __future__ import annotations

import pytest

from gdtui.keys import markdown_table
from tests.paths import ROOT


@pytest.mark.parametrize("page", ["README.md", "docs/step-debugger.md"])
def test_the_key_tables_are_the_bindings_table(page):
    """The key tables of the README and docs/step-debugger.md are the one gdtui/keys.py makes
    (the footer and the help screen use it too)."""
    text = (ROOT / page).read_text()
    start = text.index("<!-- keys:start -->\n") + len("<!-- keys:start -->\n")
    end = text.index("<!-- keys:end -->")
    assert text[start:end] == markdown_table(), "regenerate it with: python -m gdtui.keys"

