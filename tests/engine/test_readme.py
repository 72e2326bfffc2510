"""The README and docs/ document what gdtui does: every key and every CLI flag, and their links hold."""

from __future__ import annotations

import re

import pytest

from gdtui.cli import build_parser, main
from tests.paths import ROOT

README = (ROOT / "README.md").read_text()
DOCS = ROOT / "docs"


def flags():
    return [f for a in build_parser()._actions for f in a.option_strings if f.startswith("--") and f != "--help"]


def test_the_readmes_scenario_gives_the_notebooks_losses(tmp_path, capsys):
    """The README's short NOT gate is a working scenario: headless, its first five losses are
    the seed notebook's (0.5183403, 0.50608575, 0.50116986, 0.49811363, 0.4955888)."""
    block = README[README.index("```python\n") + len("```python\n"):]
    path = tmp_path / "short_not_gate.py"
    path.write_text(block[: block.index("```")])
    assert main([str(path), "--headless", "--steps", "5"]) == 0
    losses = [float(line.split()[3]) for line in capsys.readouterr().out.splitlines() if line.startswith("step")]
    assert losses == pytest.approx([0.5183403, 0.50608575, 0.50116986, 0.49811363, 0.4955888], rel=1e-6)


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
