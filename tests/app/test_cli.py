"""The command line: each bad value is one line naming its flag, and the flags do only what they say.

The step-debugger's half (it needs textual); the headless half is tests/engine/test_cli.py.
"""

from __future__ import annotations

from gdtui.cli import main
from gdtui.jobs import make_app as real_make_app
from tests.paths import SCENARIOS

NOT_GATE = str(SCENARIOS / "not_gate.py")


def screen_start(monkeypatch, *argv: str) -> tuple[int, list[str] | None]:
    """``gdtui NOT_GATE ARGV`` with a step-debugger that never opens: the exit status, and the flags
    it would start its trainer with (None when it never got that far)."""
    asked = {}

    class NoScreen:
        return_code, error = 0, None

        def run(self):
            pass

    def make(path, **kwargs):
        asked.update(kwargs)
        return NoScreen()

    monkeypatch.setattr("gdtui.app.make_app", make)
    status = main([NOT_GATE, *argv])
    return status, asked.get("flags")


def test_the_step_debugger_keeps_its_values_and_gives_the_trace_limit_to_its_export_log(monkeypatch):
    """Issue 12 case 25, in the step-debugger: --trace-max-elements 0 reaches the trace (the export
    log's limit is 0), while the session keeps the values it shows, up to 4096 elements."""
    status, flags = screen_start(monkeypatch, "--trace-max-elements", "0")
    assert status == 0
    # the trainer's: its session keeps max(N, 4096) values (trainer.session_options)
    assert flags[flags.index("--trace-max-elements") + 1] == "0"
    app = real_make_app(NOT_GATE, max_values=4096, trace_max_elements=0)
    try:
        assert app.port.trace.trace.max_elements == 0
    finally:
        app.port.trace.end(None)  # closes and removes the temporary log




def test_the_config_file_sets_the_detach_timeout_and_the_flag_wins(tmp_path, monkeypatch, capsys):
    """Issue 13: detach_timeout_minutes in config.toml is the timeout of the trainer the screen starts;
    --detach-timeout wins over it; a bad file is one line and exit status 2 before any trainer starts."""
    path = tmp_path / "config.toml"
    monkeypatch.setenv("GDTUI_CONFIG", str(path))
    for text, argv, minutes in [(None, (), "30.0"), ("detach_timeout_minutes = 2.5\n", (), "2.5"),
                                ("detach_timeout_minutes = 2.5\n", ("--detach-timeout", "7"), "7.0")]:
        if text is not None:
            path.write_text(text)
        status, flags = screen_start(monkeypatch, *argv)
        assert status == 0 and flags[flags.index("--detach-timeout") + 1] == minutes
    path.write_text("detach_timeout_minutes = -3\n")
    assert screen_start(monkeypatch) == (2, None)
    assert capsys.readouterr().err == f"{path}: detach_timeout_minutes = -3 is not a number of minutes; give 0 or more (0 waits forever)\n"
