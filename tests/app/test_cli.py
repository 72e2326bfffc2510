"""The command line: each bad value is one line naming its flag, and the flags do only what they say.

The step-debugger's half (it needs textual); the headless half is tests/engine/test_cli.py.
"""

from __future__ import annotations

from gdtui.cli import main
from gdtui.jobs import make_app as real_make_app
from tests.paths import SCENARIOS

NOT_GATE = str(SCENARIOS / "not_gate.py")


def test_the_step_debugger_keeps_its_values_and_gives_the_trace_limit_to_its_export_log(monkeypatch):
    """Issue 12 case 25, in the step-debugger: --trace-max-elements 0 reaches the trace (the export
    log's limit is 0), while the session keeps the values it shows, up to 4096 elements."""
    asked = {}

    class NoScreen:
        return_code, error = 0, None

        def run(self):
            pass

    def make(path, **kwargs):
        asked.update(kwargs)
        return NoScreen()

    monkeypatch.setattr("gdtui.app.make_app", make)
    assert main([NOT_GATE, "--trace-max-elements", "0"]) == 0
    flags = asked["flags"]  # the trainer's: its session keeps max(N, 4096) values (trainer.session_options)
    assert flags[flags.index("--trace-max-elements") + 1] == "0"
    asked["max_values"] = 4096
    app = real_make_app(NOT_GATE, max_values=asked["max_values"], trace_max_elements=0)
    try:
        assert app.port.trace.trace.max_elements == 0
    finally:
        app.port.trace.end(None)  # closes and removes the temporary log

