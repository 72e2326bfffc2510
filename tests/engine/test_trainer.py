"""Issue 13: the trainer process, through gdtui.client: numbers, rewind, output, faults, sockets.

One trainer on scenarios/not_gate.py serves the first tests in turn (the tests run in file order
and each starts from a reset); the fault tests each need a trainer of their own.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import threading
import time

import pytest

from gdtui import protocol as p
from gdtui.client import Ended, TrainerClient, TrainerError
from tests.paths import ROOT
from tests.plain_loop import PlainLoop

FAULTY = "tests/trainer_scenarios/faulty.py"
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def start(scenario: str, tmp_path, *args: str) -> TrainerClient:
    client = TrainerClient.start(scenario, args=args, socket_path=str(tmp_path / "t.sock"), cwd=str(ROOT), env=ENV,
                                 name="test")
    assert isinstance(client.wait_for((p.Opened, p.LoadFailed), 60), p.Opened)
    return client


@pytest.fixture(scope="module")
def trainer(tmp_path_factory):
    holder = {"client": start("scenarios/not_gate.py", tmp_path_factory.mktemp("trainer"))}
    yield holder
    ended = holder["client"].quit()
    assert ended is not None and ended.status == 0


def reattach(trainer) -> TrainerClient:
    """A new client of the module's trainer, in place of the one that detached."""
    old = trainer["client"]
    assert old.process.poll() is None
    again = TrainerClient.connect(old.path, name="test")
    again.process = old.process  # the fixture quits it
    trainer["client"] = again
    return again


def steps(client: TrainerClient, n: int) -> tuple[list[p.StepRecord], p.Frame]:
    seen: list = []
    client.send(p.Step(n))
    frame = client.wait_for(p.Frame, 60, seen)
    return [e.record for e in seen if isinstance(e, p.Stepped)], frame


def reset(client: TrainerClient) -> p.Opened:
    client.send(p.Reset())
    opened = client.wait_for(p.Opened, 60)
    client.wait_for(p.Done, 60)  # the reset's frame, and its end
    return opened


def test_the_hello_names_the_protocol_the_scenario_and_the_pid(trainer):
    """Issue 13: the trainer's hello carries PROTOCOL_VERSION, gdtui's version, its pid and the scenario."""
    client = trainer["client"]
    assert client.hello.protocol == p.PROTOCOL_VERSION
    assert client.hello.pid == client.process.pid
    assert client.hello.scenario == "scenarios/not_gate.py"


def test_three_steps_give_a_plain_loops_numbers(trainer):
    """Issue 13: step 3 through the client gives the losses and parameters of a plain PyTorch loop, exactly."""
    client = trainer["client"]
    reset(client)
    records, frame = steps(client, 3)
    plain = PlainLoop(ROOT / "scenarios/not_gate.py")
    expected = [plain.step() for _ in range(3)]
    assert [r.loss for r in records] == [e["loss"] for e in expected]
    assert [r.step for r in records] == [1, 2, 3] and frame.state.step == 3
    assert [v.values for v in frame.state.params.values()] == expected[-1]["params"]


def test_rewind_goes_back_and_the_step_runs_again_the_same(trainer):
    """Issue 13: rewind 1 through the client shows step 2; stepping again gives the plain loop's third loss."""
    client = trainer["client"]
    reset(client)
    steps(client, 3)
    client.send(p.Rewind(1))
    frame = client.wait_for(p.Frame, 60)
    assert frame.state.step == 2
    records, _ = steps(client, 1)
    plain = PlainLoop(ROOT / "scenarios/not_gate.py")
    assert records[0].loss == [plain.step() for _ in range(3)][-1]["loss"]


def test_the_socket_is_mode_0600(trainer):
    """Issue 13: the trainer's socket is readable and writable by its user only."""
    assert stat.S_IMODE(os.stat(trainer["client"].path).st_mode) == 0o600


def test_a_second_client_is_refused_naming_the_first(trainer):
    """Issue 13: a second connect is refused with a message naming the connected client."""
    with pytest.raises(TrainerError, match=rf"already has a client: pid {os.getpid()} \(test\)"):
        TrainerClient.connect(trainer["client"].path)


def test_a_client_of_another_protocol_is_refused(trainer):
    """Issue 13: an attach of another protocol version gets one line naming both versions, and the trainer lives on."""
    trainer["client"].detach()  # the trainer waits for a client again
    time.sleep(0.2)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(trainer["client"].path)
    reader = p.LineReader(sock.recv)
    assert isinstance(reader.read(), p.Hello)
    sock.sendall(b'{"type":"attach","protocol":99,"gdtui_version":"9","pid":1}\n')
    refused = reader.read()
    sock.close()
    assert isinstance(refused, p.Refused) and "protocol 99" in refused.reason
    assert reattach(trainer).hello.protocol == p.PROTOCOL_VERSION


def test_a_trainer_of_another_protocol_is_one_clear_error(tmp_path):
    """Issue 13: a client that meets a hello of another version raises TrainerError naming both versions."""
    path = str(tmp_path / "old.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)

    def old_trainer():
        conn, _ = server.accept()
        conn.sendall(b'{"type":"hello","protocol":0,"gdtui_version":"0.0.1","pid":1,"scenario":"s.py"}\n')
        conn.close()

    threading.Thread(target=old_trainer, daemon=True).start()
    with pytest.raises(TrainerError, match=rf"protocol 0 and this gdtui .* speaks {p.PROTOCOL_VERSION}"):
        TrainerClient.connect(path)
    server.close()


def test_a_client_that_goes_away_finds_the_same_step_again(trainer):
    """Issue 13: a client disconnects and a new one reconnects: the trainer waited, at the same step and history."""
    client = trainer["client"]
    reset(client)
    steps(client, 3)
    client.detach()
    time.sleep(0.2)
    assert client.process.poll() is None
    again = reattach(trainer)
    opened = again.wait_for(p.Opened, 60)
    assert opened.state.step == 3 and opened.state.rewind_depth == 3
    again.send(p.Rewind(1))
    assert again.wait_for(p.Frame, 60).state.step == 2


def test_output_lines_arrive_marked_with_their_step(tmp_path):
    """Issue 13: 1,000 printed lines a step and a line written with os.write(1, ...) each arrive marked with their step."""
    client = start(FAULTY, tmp_path, "--print", "1000", "--os-write")
    try:
        seen: list = []
        client.send(p.Step(2))
        client.wait_for(p.Frame, 60, seen)
        lines = [line for e in seen if isinstance(e, p.Output) for line in e.lines]
        printed = [(step, text) for step, text in lines if " line " in text]
        assert len(printed) == 2000
        assert all(text.startswith(f"step {step} line ") for step, text in printed)
        assert [(step, text) for step, text in lines if text.startswith("fd1")] == [(1, "fd1 step 1"), (2, "fd1 step 2")]
    finally:
        assert client.quit().status == 0


def test_a_segfault_is_reported_with_the_last_output(tmp_path):
    """Issue 13: a scenario that reads address 0 at step 3: the client reports SIGSEGV and the last line printed."""
    client = start(FAULTY, tmp_path, "--segfault-at", "3")
    client.send(p.Step(5))
    ended = client.wait_for(Ended, 60)
    assert ended.signal == signal.SIGSEGV and ended.status is None
    assert ended.last_lines[-1] == "about to read address 0"
    assert "SIGSEGV" in ended.how


def test_os_exit_is_reported_with_its_status(tmp_path):
    """Issue 13: a scenario that calls os._exit(7) at step 2: the client reports status 7 and the last line."""
    client = start(FAULTY, tmp_path, "--exit-at", "2")
    client.send(p.Step(5))
    ended = client.wait_for(Ended, 60)
    assert ended.status == 7 and ended.signal is None
    assert ended.last_lines[-1] == "calling os._exit(7)"
    assert not os.path.exists(tmp_path / "t.sock") or client.process.poll() == 7


def test_interrupt_rolls_the_stuck_step_back(tmp_path, monkeypatch):
    """Issue 13: a step stuck in the model gets KeyboardInterrupt from interrupt; it is rolled back and
    stepping on gives a plain loop's numbers."""
    monkeypatch.setenv("GDTUI_TEST_SLEPT", "")
    client = TrainerClient.start(FAULTY, args=("--sleep-at", "2"), socket_path=str(tmp_path / "t.sock"), cwd=str(ROOT),
                                 env={**ENV, "GDTUI_TEST_SLEPT": ""})
    try:
        client.wait_for(p.Opened, 60)
        client.send(p.Step(3))
        assert isinstance(client.wait_for(p.Stepped, 60), p.Stepped)
        time.sleep(0.3)  # into step 2's sleep
        client.interrupt()
        stopped = client.wait_for(p.Stopped, 60)
        assert stopped.reason == "interrupted"
        frame = client.wait_for(p.Frame, 60)
        assert frame.state.step == 1 and frame.state.next_phase == "forward"
        records, _ = steps(client, 2)
        monkeypatch.setattr(sys, "argv", [FAULTY])
        plain = PlainLoop(ROOT / FAULTY)
        assert [r.loss for r in records] == [e["loss"] for e in [plain.step() for _ in range(3)]][1:]
    finally:
        assert client.quit().status == 0


def test_a_path_that_is_not_a_stale_socket_is_refused(tmp_path):
    """Issue 13: the trainer refuses a --socket PATH that exists and is not a socket, in one line, status 2."""
    path = tmp_path / "taken"
    path.write_text("keep me")
    out = subprocess.run([sys.executable, "-m", "gdtui.trainer", "scenarios/not_gate.py", "--socket", str(path)],
                         capture_output=True, text=True, cwd=ROOT, env=ENV, timeout=60)
    assert out.returncode == 2
    assert out.stderr.strip() == f"gdtui trainer: {path} exists and is not a socket; choose another path"
    assert path.read_text() == "keep me"


SLOW_CHECK = (
    "import time\nimport torch\ntorch.manual_seed(0)\n"
    "net = torch.nn.Sequential(*[torch.nn.Linear(3, 3) for _ in range(6)])\n"
    "def model(x):  # a function: evaluated one perturbation at a time\n    time.sleep(0.05)\n    return net(x)\n"
    "loss_fn = torch.nn.MSELoss()\n"
    "data = (torch.randn(5, 3), torch.randn(5, 3))\n"
    "optimizer = torch.optim.SGD(net.parameters(), lr=0.1)\n"
)


def test_a_gradient_check_sends_its_progress_and_an_interrupt_cancels_it(tmp_path):
    """Issue 12 case 34 over the trainer: the check says "tensor k of n" as progress events, an
    interrupt cancels it between evaluations (not as a rolled-back step), and the session is as it
    was: its next two steps are a plain loop's."""
    path = tmp_path / "slow.py"
    path.write_text(SLOW_CHECK)
    client = start(str(path), tmp_path)
    try:
        seen: list = []
        client.send(p.GradientCheck())
        progress = client.wait_for(p.Progress, 60, seen)
        assert progress.total == 12 and 1 <= progress.done <= 12
        client.interrupt()
        stopped = client.wait_for(p.Stopped, 60)
        assert stopped.reason == "interrupted" and stopped.message == "gradient check cancelled"
        client.wait_for(p.Done, 60)
        records, frame = steps(client, 2)
        assert frame.state.step == 2
        plain = PlainLoop(path)
        assert [r.loss for r in records] == [plain.step()["loss"] for _ in range(2)]
    finally:
        assert client.quit().status == 0


def test_a_headless_run_stays_in_one_process(tmp_path):
    """Issue 13: a headless run starts no trainer child: the model runs in the process the shell
    started (its pid), which has no child process while it steps; the numbers are a plain loop's."""
    record = tmp_path / "record.json"
    out = subprocess.Popen([sys.executable, "-m", "gdtui", FAULTY, "--headless", "--steps", "2", "--",
                            "--record", str(record)], cwd=ROOT, env=ENV, stdout=subprocess.PIPE, text=True)
    lines = out.communicate(timeout=120)[0].splitlines()
    assert out.returncode == 0
    assert json.loads(record.read_text()) == {"pid": out.pid, "children": []}
    sys_argv = sys.argv
    try:
        sys.argv = [FAULTY]
        plain = PlainLoop(ROOT / FAULTY)
    finally:
        sys.argv = sys_argv
    losses = [float(re.search(r"loss (\S+)", line).group(1)) for line in lines]
    assert losses == pytest.approx([plain.step()["loss"] for _ in range(2)], rel=1e-6)
