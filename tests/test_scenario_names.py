"""What a scenario sees of gdtui: its reserved names, and the command line it is given."""

from __future__ import annotations

from conftest import BAD
from gdtui.cli import main


def test_a_params_list_says_params_is_a_gdtui_name(capsys):
    """Issue 12 case 37: a tutorial's own `params = [w, b]` collides with gdtui's reserved `params`:
    one line, at the line that defines it, saying whose name it is and how to rename it."""
    path = BAD / "params_list.py"
    assert main([str(path), "--headless", "--steps", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(f"{path}:6: "), err  # params = [w, b]
    assert "`params` is a name gdtui reads" in err
    assert "rename the variable" in err
