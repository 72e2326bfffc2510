"""Issue 13: listen, detach and find trainers: gdtui --listen, gdtui --connect, the detach timeout.

One `gdtui scenarios/not_gate.py --listen` trainer, with its socket in a runtime folder of this
module's own, serves the tests in turn (they run in file order; the last one ends it with SIGTERM).
The detach timeout needs a trainer of its own.
"""

from __future__ import annotations

import os
import re
import select
import signal
import socket
import stat
import subprocess
import sys
import time

import pytest

from gdtui import protocol as p
from gdtui.client import TrainerClient, TrainerError
from tests.paths import ROOT
from tests.plain_loop import PlainLoop

NOT_GATE = ROOT / "scenarios/not_gate.py"


def read_line(proc: subprocess.Popen, timeout: float = 60.0) -> str:
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, f"no line from the trainer in {timeout:g} s"
    return proc.stdout.readline().decode()


def gdtui(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gdtui", *args], capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=120)


@pytest.fixture(scope="module")
def listening(tmp_path_factory):
    runtime = tmp_path_factory.mktemp("runtime")
    runtime.chmod(0o700)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "XDG_RUNTIME_DIR": str(runtime)}
    proc = subprocess.Popen([sys.executable, "-m", "gdtui", "scenarios/not_gate.py", "--listen"], cwd=ROOT, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, start_new_session=True)
    line = read_line(proc)
    path = re.search(r" listens on (\S+) ", line).group(1)
    trainer = {"proc": proc, "path": path, "env": env, "line": line, "folder": str(runtime / "gdtui")}
    yield trainer
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    proc.stdout.close()


def connect(path: str, name: str = "test") -> tuple[TrainerClient, p.Opened]:
    client = TrainerClient.connect(path, name=name)
    opened = client.wait_for((p.Opened, p.LoadFailed), 60)
    assert isinstance(opened, p.Opened)
    return client, opened


def steps(client: TrainerClient, n: int) -> tuple[list[p.StepRecord], p.Frame]:
    seen: list = []
    client.send(p.Step(n))
    frame = client.wait_for(p.Frame, 60, seen)
    return [e.record for e in seen if isinstance(e, p.Stepped)], frame


def reset(client: TrainerClient) -> None:
    client.send(p.Reset())
    assert client.wait_for(p.Opened, 60).state.step == 0
    client.wait_for(p.Done, 60)  # the reset's frame, and its end


def test_listen_says_where_it_listens_on_a_private_socket(listening):
    """Issue 13: --listen prints one line naming the socket and the command that connects; the socket is
    mode 0600 in a folder of mode 0700 (the runtime folder's gdtui)."""
    path = listening["path"]
    assert os.path.dirname(path) == listening["folder"]
    assert listening["line"] == (f"gdtui: scenarios/not_gate.py listens on {path} (pid {listening['proc'].pid}); "
                                 f"connect with: gdtui --connect {path}\n")
    assert stat.S_ISSOCK(os.lstat(path).st_mode) and stat.S_IMODE(os.lstat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.lstat(listening["folder"]).st_mode) == 0o700


def test_step_detach_and_connect_again_keeps_the_step_and_rewind(listening):
    """Issue 13: connect, step 3 (a plain loop's numbers), detach, connect again: step 3 with its history;
    rewind 1 shows step 2, and stepping again gives the plain loop's third step."""
    plain = PlainLoop(NOT_GATE)
    expected = [plain.step() for _ in range(3)]
    client, _ = connect(listening["path"])
    reset(client)
    records, frame = steps(client, 3)
    assert [r.loss for r in records] == [e["loss"] for e in expected]
    assert [v.values for v in frame.state.params.values()] == expected[-1]["params"]
    client.detach()
    time.sleep(0.2)
    assert listening["proc"].poll() is None
    again, opened = connect(listening["path"])
    assert opened.state.step == 3 and opened.state.rewind_depth == 3
    assert [v.values for v in opened.state.params.values()] == expected[-1]["params"]
    again.send(p.Rewind(1))
    assert again.wait_for(p.Frame, 60).state.step == 2
    records, frame = steps(again, 1)
    assert records[0].loss == expected[-1]["loss"]
    assert [v.values for v in frame.state.params.values()] == expected[-1]["params"]
    reset(again)
    again.detach()


def test_a_second_client_is_refused_naming_the_first_and_when_it_attached(listening):
    """Issue 13: while one client is attached, a second is refused with a line naming the first one's pid,
    name and the time it attached; the first stays attached."""
    first, _ = connect(listening["path"], name="first")
    try:
        with pytest.raises(TrainerError, match=rf"already has a client: pid {os.getpid()} \(first\), attached at "
                                               r"\d\d:\d\d:\d\d \(\d+ s ago\); detach it first"):
            TrainerClient.connect(listening["path"], name="second")
        records, _ = steps(first, 1)
        assert records[0].step == 1
        reset(first)
    finally:
        first.detach()


def test_connect_headless_steps_the_trainer_and_prints_a_plain_loops_numbers(listening):
    """Issue 13: gdtui --connect PATH --headless --steps 2 prints the step lines of a plain loop's first two
    steps, and leaves the trainer at step 2; gdtui --connect PATH --status then prints its status."""
    plain = PlainLoop(NOT_GATE)
    expected = [plain.step() for _ in range(2)]
    out = gdtui(listening["env"], "--connect", listening["path"], "--headless", "--steps", "2")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert [line.split()[:2] for line in lines] == [["step", "1"], ["step", "2"]]
    losses = [float(re.search(r"loss (\S+)", line).group(1)) for line in lines]
    assert losses == pytest.approx([e["loss"] for e in expected], rel=1e-6)
    status = gdtui(listening["env"], "--connect", listening["path"], "--status")
    assert status.returncode == 0
    assert status.stdout.startswith(f"{listening['path']}  scenarios/not_gate.py  step 2  pid {listening['proc'].pid}")
    assert "(waits forever)" in status.stdout and "--listen" in status.stdout


def test_sighup_pauses_a_run_and_connect_with_no_path_finds_the_trainer(listening):
    """Issue 13: SIGHUP to a trainer whose client runs it: the run stops (paused) after its step, the
    trainer lives, stays at that step, and gdtui --connect --status with no path lists it and names it."""
    client, _ = connect(listening["path"])
    try:
        client.send(p.Run(None))
        assert client.wait_for(p.Frame, 60).final is False  # the run is going
        os.kill(listening["proc"].pid, signal.SIGHUP)
        stopped = client.wait_for(p.Stopped, 60)
        assert stopped.reason == "paused" and stopped.record.step > 0
        assert client.wait_for(p.Frame, 60).state.step == stopped.record.step
        time.sleep(0.3)
        assert listening["proc"].poll() is None
    finally:
        client.detach()
    out = gdtui(listening["env"], "--connect", "--status")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0].startswith(
        f"{listening['path']}  scenarios/not_gate.py  step {stopped.record.step}  pid {listening['proc'].pid}  started ")
    assert out.stdout.splitlines()[-1] == f"gdtui --connect {listening['path']} would connect to it"


def test_a_client_whose_terminal_hangs_up_leaves_the_trainer_paused(listening):
    """Issue 13: a client stepping the trainer (gdtui --connect --headless) dies of SIGHUP, as when its SSH
    session drops: the trainer lives, stops stepping, and waits with no client."""
    proc = subprocess.Popen([sys.executable, "-m", "gdtui", "--connect", listening["path"], "--headless", "--steps",
                             "100000000"], cwd=ROOT, env=listening["env"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    try:
        assert read_line(proc).startswith("step ")  # it steps
        proc.send_signal(signal.SIGHUP)
        assert proc.wait(30) == -signal.SIGHUP
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
    time.sleep(0.5)
    first = gdtui(listening["env"], "--connect", listening["path"], "--status").stdout
    time.sleep(0.3)
    again = gdtui(listening["env"], "--connect", listening["path"], "--status").stdout
    assert listening["proc"].poll() is None
    step = re.search(r"  step (\d+)  ", first).group(1)
    assert int(step) > 0 and re.search(r"  step (\d+)  ", again).group(1) == step  # paused: no step since
    assert "  no client for " in again


def test_the_listing_removes_stale_sockets(listening):
    """Issue 13: gdtui --connect --status with no path removes a socket nobody answers on (its trainer died) and
    says so, and still lists the live trainer."""
    stale = os.path.join(listening["folder"], "dead-1.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(stale)
    server.close()  # the socket file stays, with no process behind it
    past = time.time() - 60
    os.utime(stale, (past, past))
    out = gdtui(listening["env"], "--connect", "--status")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == f"removed a stale socket: {stale}"
    assert lines[1].startswith(f"{listening['path']}  scenarios/not_gate.py  step ")
    assert not os.path.exists(stale)


def test_listen_on_a_live_trainers_socket_is_refused_and_the_trainer_goes_on(listening):
    """Issue 13: gdtui --listen PATH where PATH is a live trainer's socket: one line naming it, status 2;
    the live trainer keeps its socket and steps on with a plain loop's numbers."""
    path = listening["path"]
    out = gdtui(listening["env"], "scenarios/not_gate.py", "--listen", path)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr == f"gdtui trainer: {path}: a trainer is already listening there; gdtui --connect {path} opens it\n"
    assert listening["proc"].poll() is None and stat.S_ISSOCK(os.lstat(path).st_mode)
    client, _ = connect(path)
    try:
        reset(client)
        records, _ = steps(client, 2)
        plain = PlainLoop(NOT_GATE)
        assert [r.loss for r in records] == [plain.step()["loss"] for _ in range(2)]
        reset(client)
    finally:
        client.detach()


def test_connect_with_no_path_lists_two_trainers_and_connects_to_one(listening):
    """Issue 13: gdtui --connect with no path and two trainers running lists both (scenario, step, age),
    connects to neither (status 1); once one is left, it connects to it (--headless --steps 1 steps it)."""
    client, _ = connect(listening["path"])
    reset(client)
    client.detach()
    second = subprocess.Popen([sys.executable, "-m", "gdtui", "scenarios/fit_2x.py", "--listen"], cwd=ROOT,
                              env=listening["env"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              start_new_session=True)
    try:
        other = re.search(r" listens on (\S+) ", read_line(second)).group(1)
        out = gdtui(listening["env"], "--connect")
        assert out.returncode == 1, out.stderr
        lines = out.stdout.splitlines()
        assert lines[-1] == "2 trainers answer; name one: gdtui --connect PATH"
        rows = {line.split("  ")[0]: line for line in lines[:-1]}
        assert set(rows) == {listening["path"], other}
        for path, scenario, pid in ((listening["path"], "scenarios/not_gate.py", listening["proc"].pid),
                                    (other, "scenarios/fit_2x.py", second.pid)):
            assert re.fullmatch(rf"{re.escape(path)}  {scenario}  step 0  pid {pid}  started \d+ s ago  "
                                r"no client for \d+ s \(waits forever\)  --listen", rows[path]), rows[path]
        status = gdtui(listening["env"], "--connect", "--status").stdout
        assert "client:" not in status  # neither was connected to
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(30) == 128 + signal.SIGTERM
        second.stdout.close()
    out = gdtui(listening["env"], "--connect", "--headless", "--steps", "1")
    assert out.returncode == 0, out.stderr
    plain = PlainLoop(NOT_GATE)
    assert out.stdout.split()[:2] == ["step", "1"]
    assert float(re.search(r"loss (\S+)", out.stdout).group(1)) == pytest.approx(plain.step()["loss"], rel=1e-6)
    client, _ = connect(listening["path"])
    reset(client)
    client.detach()


def test_sigterm_ends_the_listening_trainer_and_removes_its_socket(listening):
    """Issue 13: SIGTERM ends a --listen trainer with status 143 and its socket is gone; the listing then
    finds no trainer (status 1)."""
    proc = listening["proc"]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 128 + signal.SIGTERM
    assert not os.path.exists(listening["path"])
    out = gdtui(listening["env"], "--connect", "--status")
    assert out.returncode == 1 and out.stdout == f"no trainer is running in {listening['folder']}\n"


def test_a_detached_trainer_ends_after_its_detach_timeout(tmp_path):
    """Issue 13: a trainer with --detach-timeout 0.02 (1.2 s) lives on while a client is attached, and once
    it detaches, ends with status 0 and removes its socket."""
    path = str(tmp_path / "t.sock")
    client = TrainerClient.start("scenarios/not_gate.py", flags=("--detach-timeout", "0.02"), socket_path=path,
                                 cwd=str(ROOT), env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert isinstance(client.wait_for((p.Opened, p.LoadFailed), 60), p.Opened)
        time.sleep(1.5)  # longer than the timeout, attached
        records, _ = steps(client, 1)
        assert records[0].step == 1
        client.detach()
        assert client.process.wait(30) == 0
        assert not os.path.exists(path)
    finally:
        client.kill()


def test_listen_refuses_a_path_that_is_not_a_stale_socket(tmp_path):
    """Issue 13: gdtui --listen PATH on an existing file is one line, status 2, and leaves the file as it was;
    gdtui --connect on it says it is not a socket."""
    path = tmp_path / "taken"
    path.write_text("keep me")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = gdtui(env, "scenarios/not_gate.py", "--listen", str(path))
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr == f"gdtui trainer: {path} exists and is not a socket; choose another path\n"
    assert path.read_text() == "keep me"
    out = gdtui(env, "--connect", str(path))
    assert out.returncode == 2 and out.stderr == f"gdtui --connect: {path}: not a socket, so no trainer is there\n"


def test_listen_reuses_the_stale_socket_of_a_trainer_that_died(tmp_path):
    """Issue 13: a --listen trainer killed with SIGKILL leaves its socket; gdtui --listen PATH on it
    replaces that stale socket (mode 0600) and serves there: a client gets a plain loop's first step."""
    path = str(tmp_path / "t.sock")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def listen() -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "gdtui", "scenarios/not_gate.py", "--listen", path], cwd=ROOT,
                                env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, start_new_session=True)

    dead = listen()
    assert f" listens on {path} " in read_line(dead)
    dead.kill()
    dead.wait()
    dead.stdout.close()
    assert stat.S_ISSOCK(os.lstat(path).st_mode)  # left behind
    again = listen()
    try:
        assert read_line(again).startswith(f"gdtui: scenarios/not_gate.py listens on {path} (pid {again.pid})")
        assert stat.S_IMODE(os.lstat(path).st_mode) == 0o600
        client, _ = connect(path)
        records, _ = steps(client, 1)
        assert records[0].loss == PlainLoop(NOT_GATE).step()["loss"]
        client.detach()
    finally:
        again.send_signal(signal.SIGTERM)
        assert again.wait(30) == 128 + signal.SIGTERM
        again.stdout.close()
    assert not os.path.exists(path)
