"""Time the gradient check: ``python tests/bench_gradcheck.py [--module PATH | --against PATH] [--device DEV]``.

Not a test (timings flake under load); run it by hand on the machine you report
about. It writes two scenarios ported from public training loops to a
temporary folder, a BERT-style encoder (embedding, 4 transformer encoder
layers, a classifier head) and a transfer-learning ResNet-style head (a frozen
convolutional backbone, a trained residual block and linear layer), and prints
the median wall time of ``gradient_check`` on each, over three runs, with the
number of model evaluations it made (a vmap'd call counts its batch).

``--module PATH`` times another version of gdtui/engine/gradcheck.py (say, the
one before issue 12, from ``git show REV:gdtui/engine/gradcheck.py``) against
the same sessions; ``--against PATH`` times that version and this one in turns,
run by run, so that both see the same load on a shared machine.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BERT = '''"""BERT-style encoder: token embedding, 4 encoder layers, a [CLS] classifier"""
import torch
from torch import nn

torch.manual_seed(0)
vocab, dim, seq, batch = 1000, 128, 32, 16


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.pos = nn.Parameter(torch.zeros(seq, dim))
        layer = nn.TransformerEncoderLayer(dim, 4, 4 * dim, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 4, enable_nested_tensor=False)
        self.head = nn.Linear(dim, 2)

    def forward(self, tokens):
        return self.head(self.encoder(self.embed(tokens) + self.pos)[:, 0])


model = Encoder()
loss_fn = nn.CrossEntropyLoss()
data = (torch.randint(0, vocab, (batch, seq)), torch.randint(0, 2, (batch,)))
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
'''

RESNET = '''"""Transfer learning: a frozen convolutional backbone, a trained residual block and head"""
import torch
from torch import nn

torch.manual_seed(0)


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)

    def forward(self, x):
        return torch.relu(self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x))))) + x)


backbone = nn.Sequential(nn.Conv2d(3, 64, 7, stride=2, padding=3), nn.ReLU(), nn.MaxPool2d(3, 2, 1))
for p in backbone.parameters():
    p.requires_grad_(False)
model = nn.Sequential(backbone, Block(64), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))
loss_fn = nn.CrossEntropyLoss()
data = (torch.randn(16, 3, 64, 64), torch.randint(0, 10, (16,)))
optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01, momentum=0.9)
'''


def load_check(module: str | None, as_name: str = "gradcheck_under_test"):
    if module is None:
        from gdtui.engine.gradcheck import gradient_check

        return gradient_check
    spec = importlib.util.spec_from_file_location(as_name, module)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[as_name] = mod
    spec.loader.exec_module(mod)
    return mod.gradient_check


def count_evaluations(model) -> list[int]:
    """A counter of the model's evaluations: one per call, or the batch size of a vmap'd call."""
    import torch

    count = [0]

    def hook(module, args) -> None:
        rows = 1
        for p in module.parameters():
            if torch._C._functorch.is_batchedtensor(p):
                rows = torch._C._functorch.get_unwrapped(p).shape[torch._C._functorch.maybe_get_bdim(p)]
                break
        count[0] += rows

    model.register_forward_pre_hook(hook)
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--module", help="another gradcheck.py to time")
    parser.add_argument("--against", help="another gradcheck.py to time in turns with this one")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    import torch

    from gdtui.engine import Session

    checks = {"": load_check(args.module)}
    if args.against:
        checks = {"against": load_check(args.against, "gradcheck_against"), "this": checks[""]}
    with tempfile.TemporaryDirectory() as folder:
        for name, source in (("bert_encoder", BERT), ("resnet_head", RESNET)):
            path = Path(folder) / f"{name}.py"
            path.write_text(source)
            session = Session(path, device=args.device)
            count = count_evaluations(session.loop.sc.model)
            times: dict[str, list[float]] = {label: [] for label in checks}
            evaluations, reports = {}, {}
            for _ in range(args.runs):
                for label, check in checks.items():
                    count[0] = 0
                    start = time.perf_counter()
                    reports[label] = check(session)
                    if args.device.startswith("cuda"):
                        torch.cuda.synchronize()
                    times[label].append(time.perf_counter() - start)
                    evaluations[label] = count[0]
            for label in checks:
                verdicts = {t.verdict for t in reports[label].tensors}
                print(f"{name:13} {label:8} {len(reports[label].tensors):3} tensors  "
                      f"median {statistics.median(times[label]):7.2f} s  "
                      f"(runs: {', '.join(f'{t:.2f}' for t in times[label])})  {evaluations[label]} evaluations  "
                      f"verdicts {sorted(verdicts)}  "
                      f"on {args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads")


if __name__ == "__main__":
    main()
