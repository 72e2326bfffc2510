"""The README documents what gdtui does: every key and every CLI flag."""

from __future__ import annotations

from conftest import ROOT
from gdtui.cli import build_parser
from gdtui.keys import markdown_table

README = (ROOT / "README.md").read_text()


def test_readme_key_table_is_the_bindings_table():
    start = README.index("<!-- keys:start -->\n") + len("<!-- keys:start -->\n")
    end = README.index("<!-- keys:end -->")
    assert README[start:end] == markdown_table(), "regenerate it with: python -m gdtui.keys"


def test_readme_documents_every_cli_flag_with_an_example():
    for action in build_parser()._actions:
        for flag in action.option_strings:
            if flag.startswith("--") and flag != "--help":
                assert f"`{flag}" in README, f"{flag} is not in the README"


def test_readme_opens_with_the_two_commands():
    head = README[: README.index("## The scenarios")]
    assert "gdtui scenarios/not_gate.py" in head
    assert "pytest" in head
