"""How a scenario file is found and read: as Python reads it, from wherever the run started."""

from __future__ import annotations

import json
import os

import pytest

from gdtui.cli import main
from gdtui.engine import ScenarioError, Session
from tests.paths import BAD, ROOT
from tests.plain_loop import PlainLoop


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


CHDIR = "tests/bad_scenarios/changes_directory.py"  # as a user types it, from the repository root


def test_reset_reads_the_file_again_after_the_scenario_changed_directory(monkeypatch):
    """Issue 12 case 20: a scenario that calls os.chdir(os.path.dirname(__file__)) broke `r`
    ("no such scenario file"). The file is found where it was named, its __file__ is absolute (as
    Python gives a script), and the steps after the reset are the plain loop's."""
    monkeypatch.chdir(ROOT)
    session = Session(CHDIR)
    assert os.getcwd() == str(BAD)  # the scenario moved
    session.step()
    session.reset()
    assert session.scenario.namespace["__file__"] == str(BAD / "changes_directory.py")
    plain = PlainLoop(BAD / "changes_directory.py")
    assert [session.step().loss for _ in range(3)] == [plain.step()["loss"] for _ in range(3)]
    assert str(session.path) == CHDIR  # messages name it as the user did


def test_gradcheck_finds_the_file_after_the_scenario_changed_directory(monkeypatch, capsys):
    """Issue 12 case 20: --gradcheck re-reads the file, and said "no such scenario file". At x = 5
    the loss is 36 and autograd's 2x + 2 = 12 agrees with finite differences."""
    monkeypatch.chdir(ROOT)
    assert main([CHDIR, "--headless", "--gradcheck"]) == 0
    out = capsys.readouterr().out
    assert "loss 36" in out and out.splitlines()[1].split()[0] == "x" and out.splitlines()[1].endswith("ok")


def test_bench_loads_the_scenario_again_after_it_changed_directory(monkeypatch, capsys):
    """Issue 12 case 20, `gdtui bench`: each way loads the scenario again, and the second load said
    "no such scenario file". It runs, and names the file as the user typed it."""
    monkeypatch.chdir(ROOT)
    assert main(["bench", CHDIR, "--steps", "3", "--repeats", "1", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["scenario"] == CHDIR and result["steps"] == 3
