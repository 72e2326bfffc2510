"""The README and docs/ document what gdtui does: every key and every CLI flag, and their links hold."""

from __future__ import annotations

import re

from conftest import ROOT
from gdtui.cli import build_parser
from gdtui.keys import markdown_table

README = (ROOT / "README.md").read_text()
DOCS = ROOT / "docs"


def flags():
    return [f for a in build_parser()._actions for f in a.option_strings if f.startswith("--") and f != "--help"]


def test_the_key_table_in_the_docs_is_the_bindings_table():
    """The key table of docs/step-debugger.md is the one gdtui/keys.py makes (the footer and help use it)."""
    page = (DOCS / "step-debugger.md").read_text()
    start = page.index("<!-- keys:start -->\n") + len("<!-- keys:start -->\n")
    end = page.index("<!-- keys:end -->")
    assert page[start:end] == markdown_table(), "regenerate it with: python -m gdtui.keys"


def test_the_command_line_page_documents_every_flag():
    """Each flag of the parser has a row in docs/command-line.md's flag table."""
    page = (DOCS / "command-line.md").read_text()
    for flag in flags():
        assert re.search(rf"^\| `{re.escape(flag)}\b", page, re.M), f"{flag} has no row in docs/command-line.md"


def test_readme_opens_with_the_two_commands():
    """A newcomer copies two commands: one launches not_gate, one runs the tests."""
    head = README[: README.index("## The scenarios")]
    assert "gdtui scenarios/not_gate.py" in head
    assert "pytest" in head


def test_every_relative_link_in_the_readme_and_docs_names_a_file_and_heading_that_exist():
    """A link to docs/x.md#heading breaks when a page or heading is renamed."""
    pages = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
    for page in pages:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if "://" in target:
                continue
            file, _, anchor = target.partition("#")
            linked = (page.parent / file).resolve() if file else page
            assert linked.exists(), f"{page.name}: {target} names no file"
            if anchor and linked.suffix == ".md":
                headings = re.findall(r"^#+ (.+)$", linked.read_text(), re.M)
                slugs = {re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-") for h in headings}
                assert anchor in slugs, f"{page.name}: {target} names no heading"
