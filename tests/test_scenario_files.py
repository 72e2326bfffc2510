"""How a scenario file is found and read: as Python reads it, from wherever the run started."""

from __future__ import annotations

import pytest

from conftest import BAD, PlainLoop
from gdtui.cli import main
from gdtui.engine import ScenarioError, Session


@pytest.mark.parametrize("name", ["utf8_bom.py", "latin1_coding.py"])
def test_a_bom_or_a_pep_263_coding_line_reads_as_python_reads_it(name):
    """Issue 12 case 22: Python runs a file with a UTF-8 BOM, or with `# -*- coding: latin-1 -*-`
    and Latin-1 bytes; gdtui refused both. The docstring's é reads as é, and the steps are the plain
    loop's (runpy reads the file the way Python does)."""
    session = Session(BAD / name)
    assert session.scenario.title.startswith("Café au lait")
    assert session.scenario.namespace["label"] == "naïve"
    plain = PlainLoop(BAD / name)
    for _ in range(3):
        record, expected = session.step(), plain.step()
        assert record.loss == expected["loss"]
        assert [record.params["w"].values] == expected["params"]


def test_an_unknown_coding_is_one_line_at_the_coding_line(capsys):
    """Issue 12 case 22: `# coding: klingon` is Python's SyntaxError; gdtui says it in one line."""
    path = BAD / "unknown_coding.py"
    assert main([str(path), "--headless"]) == 2
    assert capsys.readouterr().err == (
        f"{path}:1: unknown encoding: klingon; declare an encoding Python knows, such as # coding: utf-8\n"
    )


def test_a_byte_that_is_not_utf8_names_its_line(tmp_path):
    """Issue 12 case 22: with no coding line, a Latin-1 é on line 3 is named there, with the fix."""
    path = tmp_path / "latin1_without_coding.py"
    path.write_bytes(b'"""doc"""\nimport torch\nx = "\xe9"\n')
    with pytest.raises(ScenarioError) as info:
        Session(path)
    assert info.value.line == 3 and "0xe9 is not utf-8" in str(info.value) and "coding: latin-1" in str(info.value)
