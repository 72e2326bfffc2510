"""A NOT gate that misbehaves at will, for the trainer's tests (issue 13).

Arguments (after ``--``): ``--print N`` prints N lines a step; ``--os-write`` writes a line a
step straight to fd 1; ``--segfault-at K`` reads address 0 at step K; ``--exit-at K`` calls
os._exit(7) at step K; ``--sleep-at K`` sleeps (for a long time) in the model at step K, once;
``--tty`` prints whether fd 1 is a terminal and runs ``echo`` each step; ``--record PATH`` writes,
each step, the process id running the model and the ids of the processes it started.
Each line it prints names the step it was printed in, counted by calls of the model.
"""

import argparse
import ctypes
import json
import os
import subprocess
import sys
import time

import torch

parser = argparse.ArgumentParser()
parser.add_argument("--print", type=int, default=0)
parser.add_argument("--os-write", action="store_true")
parser.add_argument("--segfault-at", type=int)
parser.add_argument("--exit-at", type=int)
parser.add_argument("--sleep-at", type=int)
parser.add_argument("--tty", action="store_true")
parser.add_argument("--record")
options = parser.parse_args(sys.argv[1:])

w = torch.tensor([0.5], requires_grad=True)
b = torch.tensor([0.1], requires_grad=True)
data = (torch.tensor([[0.0], [1.0]]), torch.tensor([[1.0], [0.0]]))
loss_fn = lambda pred, y: ((pred - y) ** 2).mean()
optimizer = torch.optim.SGD([w, b], lr=0.5)
calls = [0]


def model(x):
    calls[0] += 1
    step = calls[0]
    for i in range(options.print):
        print(f"step {step} line {i}")
    if options.tty:
        print(f"isatty(1) {os.isatty(1)} step {step}")
        subprocess.run(["echo", f"child step {step}"], check=True)
    if options.record:
        children = [int(k) for task in os.listdir("/proc/self/task")
                    for k in open(f"/proc/self/task/{task}/children").read().split()]
        with open(options.record, "w") as out:
            json.dump({"pid": os.getpid(), "children": children}, out)
    if options.os_write:
        os.write(1, f"fd1 step {step}\n".encode())
    if step == options.segfault_at:
        print("about to read address 0", flush=True)
        ctypes.string_at(0)
    if step == options.exit_at:
        print("calling os._exit(7)", flush=True)
        os._exit(7)
    if step == options.sleep_at and not os.environ.get("GDTUI_TEST_SLEPT"):
        os.environ["GDTUI_TEST_SLEPT"] = "1"  # once: the step runs again after the interrupt
        time.sleep(600)
    return torch.sigmoid(x * w + b)
