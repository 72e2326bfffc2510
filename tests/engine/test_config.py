"""The settings file (gdtui/config.py): defaults, what it sets, and a bad file in one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from gdtui import config


def test_no_file_is_the_defaults(tmp_path):
    """Issue 13: with no config.toml, a detached trainer waits 30 minutes, as the issue says."""
    assert config.load(tmp_path / "config.toml").detach_timeout_minutes == 30.0


def test_gdtui_config_names_the_file(tmp_path, monkeypatch):
    """Issue 13: $GDTUI_CONFIG names the settings file; its detach_timeout_minutes is read."""
    path = tmp_path / "mine.toml"
    path.write_text("detach_timeout_minutes = 120\n")
    monkeypatch.setenv("GDTUI_CONFIG", str(path))
    assert config.config_path() == path
    assert config.load().detach_timeout_minutes == 120.0


def test_without_gdtui_config_the_file_is_in_the_users_config_folder(monkeypatch):
    """Issue 13: the default place is the platform's config folder for gdtui."""
    monkeypatch.delenv("GDTUI_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", "/x/conf")
    path = config.config_path()
    assert path.name == "config.toml" and path.parent.name == "gdtui"


@pytest.mark.parametrize("text, words", [
    ("detach_timeout_minutes = \n", "line 1"),
    ("\n\ndetach_timeout_minutes = 1 2\n", "at line 3"),
    ("detach_timeout = 5\n", "unknown setting 'detach_timeout'; the settings are detach_timeout_minutes"),
    ("detach_timeout_minutes = -1\n", "-1 is not a number of minutes"),
    ("detach_timeout_minutes = 'soon'\n", "'soon' is not a number of minutes"),
    ("detach_timeout_minutes = true\n", "True is not a number of minutes"),
    ("detach_timeout_minutes = nan\n", "nan is not a number of minutes"),
])
def test_a_bad_file_is_one_line_naming_it(tmp_path, text, words):
    """Issue 13: a settings file that does not parse, or has an unknown key or a bad value, is one
    line with the file's path, where and what, and how to fix it."""
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(config.ConfigError) as raised:
        config.load(path)
    line = str(raised.value)
    assert "\n" not in line and line.startswith(f"{path}: ") and words in line, line


def test_a_file_that_is_not_text_is_one_line(tmp_path):
    """Issue 13: a binary file where the settings should be is one line, not a traceback."""
    path = tmp_path / "config.toml"
    path.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(config.ConfigError, match="cannot read it"):
        config.load(Path(path))
