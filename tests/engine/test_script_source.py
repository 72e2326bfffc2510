"""Issue 14: an attached script as a Source: stepped from a second thread, state-only rewind,
manual mode and lr changes, and what the screen is given at a pause.

The script runs in this test's main thread (as it runs in the trainer's), the steps are driven
from another thread. The reference is the same script run by plain ``runpy`` with two plain
torch optimizer hooks that copy the tensors and gradients at each step (no gdtui code).
"""

from __future__ import annotations

import json
import os
import runpy
import sys
import threading
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch.optim import optimizer as optimizer_hooks

from gdtui.engine.scenario import seed_everything
from gdtui.engine.script_source import ScriptSource
from tests.paths import ROOT

SCRIPTS = ROOT / "tests" / "attach_scripts"


def plain_steps(name: str) -> list[dict[str, Any]]:
    """The plain run: for each optimizer step, the tensors and gradients before the update
    (``pre``, ``grads``), the optimizer's state and the torch RNG then (``state``, ``rng``) and
    the tensors after it (``post``; ``all``: every optimizer's that has stepped)."""
    steps: list[dict[str, Any]] = []
    seen: list[Any] = []

    def tensors(opt):
        return [p for g in opt.param_groups for p in g["params"]]

    def pre(opt, args, kwargs):
        if not any(o is opt for o in seen):
            seen.append(opt)
        steps.append({"pre": [p.detach().clone() for p in tensors(opt)],
                      "grads": [None if p.grad is None else p.grad.clone() for p in tensors(opt)],
                      "state": optimizer_state(opt), "rng": torch.get_rng_state()})

    def post(opt, args, kwargs):
        steps[-1]["post"] = [p.detach().clone() for p in tensors(opt)]
        steps[-1]["lr"] = opt.param_groups[0]["lr"]
        steps[-1]["all"] = [p.detach().clone() for o in seen for p in tensors(o)]

    handles = [optimizer_hooks.register_optimizer_step_pre_hook(pre),
               optimizer_hooks.register_optimizer_step_post_hook(post)]
    argv = sys.argv
    sys.argv = [str(SCRIPTS / f"{name}.py")]
    try:
        seed_everything(0)
        runpy.run_path(str(SCRIPTS / f"{name}.py"), run_name="__main__")
    finally:
        sys.argv = argv
        for h in handles:
            h.remove()
    return steps


def optimizer_state(opt) -> list[list[torch.Tensor]]:
    return [[v.clone() for _, v in sorted(opt.state[p].items()) if isinstance(v, torch.Tensor)]
            for g in opt.param_groups for p in g["params"]]


def drive(name: str, actions: Callable[[ScriptSource], Any], **options: Any) -> tuple[Any, ScriptSource]:
    """Run the script in this thread while ``actions(source)`` steps it from another; then stop it."""
    source = ScriptSource(str(SCRIPTS / f"{name}.py"), history_mb=64, **options)
    result: dict[str, Any] = {}

    def driver() -> None:
        try:
            assert source.wait_started()
            result["value"] = actions(source)
        except BaseException as exc:
            result["error"] = exc
        finally:
            source.stop()

    thread = threading.Thread(target=driver)
    seed_everything(0)
    thread.start()
    source.serve()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result["value"], source


def live_tensors(source: ScriptSource) -> list[torch.Tensor]:
    return [p.detach().clone() for opt in source.hooks.optimizers for g in opt.param_groups for p in g["params"]]


def same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b))


@pytest.fixture(scope="module")
def mnist_plain():
    return plain_steps("mnist_cnn")


def test_space_three_times_then_b_restores_step_2_exactly(mnist_plain):
    """Issue 14: MNIST-style (Dropout, Adadelta, StepLR): space x3, then b: the tensors are the
    plain run's after update 2, the gradients, Adadelta's state and the torch RNG its step 3's; forward re-applies update 3
    exactly, and the script then steps on to update 4 as the plain run did (rewind restored the
    optimizer state, the scheduler and the RNG the script resumes with)."""

    def actions(source: ScriptSource):
        seen = {}
        for _ in range(3):
            source.step()
        assert source.to_pause()  # the pause of step 4, as the screen shows it
        assert source.rewind()
        seen["rewound"] = live_tensors(source)
        seen["grads"] = [p.grad.clone() for opt in source.hooks.optimizers for g in opt.param_groups for p in g["params"]]
        seen["state"] = source.state()
        seen["optimizer"] = optimizer_state(source.hooks.optimizers[0])
        seen["rng"] = torch.get_rng_state()
        seen["scheduler"] = source.tracked.live(source.tracked.schedulers)[0].last_epoch
        seen["again"] = (source.step(), live_tensors(source))
        seen["fourth"] = (source.step(), live_tensors(source))
        return seen

    seen, source = drive("mnist_cnn", actions)
    plain = mnist_plain
    assert same(seen["rewound"], plain[1]["post"]) and same(seen["rewound"], plain[2]["pre"])
    assert same(seen["grads"], plain[2]["grads"])
    assert all(same(a, b) for a, b in zip(seen["optimizer"], plain[2]["state"], strict=True))
    assert torch.equal(seen["rng"], plain[2]["rng"])
    assert seen["scheduler"] == 0 and seen["state"].lrs == (1.0,)  # StepLR stepped after update 3: back before it
    state = seen["state"]
    assert state.step == 2 and state.live == 3 and state.pause == 3
    assert "the script itself stays at step 3" in state.notes[0]
    record, tensors = seen["again"]
    assert record.step == 3 and same(tensors, plain[2]["post"])
    record, tensors = seen["fourth"]
    assert record.step == 4 and same(tensors, plain[3]["post"]) and record.lr == plain[3]["lr"]


def test_manual_mode_steps_p_minus_lr_grad(mnist_plain):
    """Issue 14: the m switch attached: the step the script asks for does p -= lr * p.grad with
    the param group's lr (1.0), from the plain run's tensors and gradients at step 1; Adadelta
    keeps no state for it."""

    def actions(source: ScriptSource):
        source.set_controls(source.controls.with_mode("manual"))
        record = source.step()
        return record, live_tensors(source), dict(source.hooks.optimizers[0].state)

    (record, tensors, state), _ = drive("mnist_cnn", actions)
    first = mnist_plain[0]
    assert record.mode == "manual" and state == {}
    assert same(tensors, [p - 1.0 * g for p, g in zip(first["pre"], first["grads"])])


def test_lr_change_goes_to_the_scripts_optimizer_and_a_scheduler_override_is_noted():
    """Issue 14: an lr set at the pause is written into the script's param groups (the step's
    record has it); nanoGPT-style, the loop sets its own lr each iteration, which a note says."""

    def actions(source: ScriptSource):
        source.set_controls(source.controls.with_lr(0.5, 2))
        first = source.step()
        source.to_pause()
        return first, source.state()

    (first, state), _ = drive("nanogpt", actions)
    assert first.lr == 0.5
    assert any("overrides it" in note for note in state.notes)


def test_state_at_a_pause_has_what_the_screen_shows():
    """Issue 14: BERT-style dict batches (model(**batch)): at the pause of step 1 the state has
    the batch by name with shapes and dtypes, the full parameter names, the lr, the line that
    called optimizer.step() with its loop around it, and the capabilities with their reasons."""

    def actions(source: ScriptSource):
        return source.state()

    state, _ = drive("bert_classifier", actions)
    batch = {b.name: b for b in state.batch}
    assert batch["input_ids"].shape == (4, 10) and batch["input_ids"].dtype == "int64"
    assert batch["labels"].shape == (4,)
    assert state.pause == 1 and state.phase == "backward" and state.loss_label == "loss"
    assert state.lrs == (5e-4,) and state.optimizer_class == "AdamW"
    lines = (SCRIPTS / "bert_classifier.py").read_text().splitlines()
    assert lines[state.source.line - 1].strip() == "optimizer.step()"
    assert "for batch in batches(3):" in [line.strip() for line in state.source.lines]
    assert state.capabilities.why_not("gradcheck") and state.capabilities.why_not("update") is None
    assert state.grads and all(g is not None for g in state.grads.values())


def test_accumulated_loss_is_labelled_as_a_sum():
    """Issue 14: nanoGPT-style accumulation of 4: the pause's loss is the sum of its 4 micro-batch losses."""
    state, _ = drive("nanogpt", lambda source: source.state())
    assert state.loss_label == "sum of 4 micro-batch losses"


def test_headless_mode_manual_traces_the_manual_update(tmp_path, mnist_plain):
    """Issue 14: gdtui mnist_cnn.py --headless --mode manual --steps 1: the trace's tensors after
    step 1 are the plain run's tensors minus lr (1.0) times its gradients (one torch thread in both,
    as the tests run torch)."""
    import subprocess

    from tests.plain_loop import read_trace

    trace = tmp_path / "manual.jsonl"
    run = subprocess.run([sys.executable, "-m", "gdtui", str(SCRIPTS / "mnist_cnn.py"), "--headless", "--mode", "manual",
                          "--steps", "1", "--trace", str(trace)], capture_output=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    assert run.returncode == 0, run.stderr.decode()
    step = next(e for e in read_trace(trace) if e["event"] == "step")
    first = mnist_plain[0]
    expected = [(p - 1.0 * g).tolist() for p, g in zip(first["pre"], first["grads"])]
    assert step["mode"] == "manual"
    assert step["params"]["conv1.bias"] == expected[1] and step["params"]["fc2.bias"] == expected[-1]


def test_dead_relu_hint_names_the_units_the_script_finds_dead():
    """Issue 14: health hints attached: a 2-8-1 network whose nn.ReLU has dead units; each step's
    dead units (seen through a global forward hook) are the ones the plain script prints for that
    step, named after the layer that feeds the ReLU."""
    import subprocess

    plain = subprocess.run([sys.executable, str(SCRIPTS / "dead_relu_units.py")], capture_output=True, timeout=60,
                           env={**os.environ, "OMP_NUM_THREADS": "1"}).stdout.decode().splitlines()[:-1]
    printed = [json.loads(line.split(" ", 1)[1]) for line in plain]  # the script's own list of dead units

    def actions(source: ScriptSource):
        return [source.step() for _ in printed]

    records, _ = drive("dead_relu_units", actions, hints=True)
    assert [list(r.dead_units[0].units) for r in records] == printed
    assert all(r.dead_units[0].site == "hidden" for r in records)
    assert any(h.kind == "dead_relu" for h in records[0].hints)


#: The plain run's optimizer step that ends gdtui's steps 2 and 4: a GradScaler skip (scaler_skip's
#: step 2) calls no optimizer.step(), so the plain hooks do not see it.
PLAIN_INDEX = {"scaler_skip": (0, 2)}


@pytest.mark.parametrize("name", ["nanogpt", "dcgan", "lbfgs_fit", "lstm_word", "bert_classifier", "frozen_backbone",
                                  "scaler_skip"])
def test_rewind_restores_step_2_in_real_loops(name):
    """Issue 14: space x3 then b restores the tensors of step 2 exactly, and the script then
    goes on as the plain run did (step 4's tensors are the plain run's), in loops with bf16
    autocast, a GradScaler, accumulation and a cosine lr (nanoGPT), two optimizers (DCGAN), a
    closure (LBFGS), clipping and a hand-decayed lr (LSTM), LambdaLR and dict batches (BERT), a
    frozen backbone, and a GradScaler skip (its step 2 is the skipped one: after it, the tensors
    are as after step 1)."""
    plain = plain_steps(name)
    second, fourth_index = PLAIN_INDEX.get(name, (1, 3))

    def actions(source: ScriptSource):
        for _ in range(3):
            source.step()
        source.to_pause()
        assert source.rewind()
        rewound = live_tensors(source)
        source.step()  # update 3 again, from the record
        source.step()  # update 4: the script runs on
        return rewound, live_tensors(source)

    (rewound, fourth), _ = drive(name, actions)
    assert same(rewound, plain[second]["all"])
    assert same(fourth, plain[fourth_index]["all"])


def test_rewound_state_shows_the_step_rewound_to():
    """Issue 14: DCGAN-style, D then G step: at G's pause, b goes back to D's pause, and the state
    shows D's tensors, its line (optimizerD.step()) and its loss (errD_real + errD_fake: a sum of 2),
    with the note that the script itself stays at step 1."""

    def actions(source: ScriptSource):
        source.step()
        source.to_pause()
        at_g = source.state()
        source.rewind()
        return at_g, source.state()

    (at_g, rewound), _ = drive("dcgan", actions)
    lines = (SCRIPTS / "dcgan.py").read_text().splitlines()
    assert at_g.optimizer == 1 and all(n.startswith("netG.") for n in at_g.params)
    assert rewound.optimizer == 0 and all(n.startswith("netD.") for n in rewound.params)
    assert lines[rewound.source.line - 1].strip() == "optimizerD.step()"
    assert rewound.loss_label == "sum of 2 micro-batch losses" and rewound.pause == 1
    assert "the script itself stays at step 1" in rewound.notes[0]
    import subprocess

    plain = subprocess.run([sys.executable, str(SCRIPTS / "dcgan.py")], capture_output=True, timeout=60,
                           env={**os.environ, "OMP_NUM_THREADS": "1"}).stdout.decode().splitlines()
    assert rewound.loss == float(plain[0])  # the script prints errD_real.item() + errD_fake.item()
