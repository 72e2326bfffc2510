"""A plain training loop to time attaching against: an MLP of WIDTH (800: about 1.9M parameters;
16: a tiny one), Adam, STEPS steps; it prints the steps per second of its loop on stderr."""
import argparse
import sys
import time

import torch
import torch.nn as nn

parser = argparse.ArgumentParser()
parser.add_argument("--width", type=int, default=800)
parser.add_argument("--steps", type=int, default=200)
args = parser.parse_args()
torch.manual_seed(0)
model = nn.Sequential(nn.Linear(args.width, args.width), nn.ReLU(), nn.Linear(args.width, args.width), nn.ReLU(),
                      nn.Linear(args.width, args.width), nn.ReLU(), nn.Linear(args.width, 10))
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
x, y = torch.randn(64, args.width), torch.randint(0, 10, (64,))
start = time.perf_counter()
for step in range(args.steps):
    optimizer.zero_grad()
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
print(f"steps/s {args.steps / (time.perf_counter() - start):.2f}", file=sys.stderr)
print(repr(loss.item()))
