"""Fixtures for every test, engine and screen alike.

The helpers tests share are plain modules beside this file (tests.paths, tests.plain_loop,
tests.bad_cases, tests.tmux_driver), imported by their package name: no test module imports
conftest or another test module.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from tests import hypothesis_profiles  # noqa: F401 - registers --hypothesis-profile default/long before the run
from tests.paths import SCENARIOS
from tests.plain_loop import PlainLoop


@pytest.fixture(autouse=True, scope="session")
def ctrl_c_as_in_a_terminal():
    """The Ctrl-C tests send SIGINT to gdtui, in this process or a child. A shell that starts the
    tests in the background (`.ci/run &`) hands them SIGINT ignored, which children inherit: give
    this process Python's own handler, so that it and its children get SIGINT as in a terminal."""
    import signal

    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    yield


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """Tests run torch on one thread: on a 2-core machine tiny models are several times faster so
    (threads only add overhead to their small ops), and every comparison is
    between gdtui and a plain loop in the same process, so the thread count cannot hide a difference."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def plain_loop():
    return PlainLoop


@pytest.fixture
def scenario(tmp_path) -> Path:
    """A copy of not_gate.py, which the tests may try to destroy."""
    path = tmp_path / "s.py"
    shutil.copy(SCENARIOS / "not_gate.py", path)
    return path
