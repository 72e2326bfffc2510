"""Saving and restoring everything a step changes, so a rewind is exact.

A :class:`Snapshot` holds copies of the trained tensors, the model's buffers, the
gradients, the optimizer state, every RNG, the position in the data and the
state the scenario keeps in its own namespace (see
:mod:`gdtui.engine.scenario_state`). Restoring it and stepping again gives the
same numbers bit for bit.
"""

from __future__ import annotations

import copy
import random
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:  # (scenario_state copies optimizer states with this module's helpers)
    from gdtui.engine.scenario_state import SavedState, ScenarioState


def _generators(source: Any) -> list[torch.Generator]:
    """The torch.Generators a DataLoader (or its samplers) draw from, if any."""
    found: list[torch.Generator] = []
    for owner in (source, getattr(source, "sampler", None), getattr(getattr(source, "batch_sampler", None), "sampler", None)):
        gen = getattr(owner, "generator", None)
        if isinstance(gen, torch.Generator) and all(gen is not g for g in found):
            found.append(gen)
    return found


def _same_tensors(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> bool:
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b))


def _same_numpy_state(a: Any, b: Any) -> bool:
    return a[0] == b[0] and a[2:] == b[2:] and np.array_equal(a[1], b[1])


def _both(a: Any, b: Any) -> bool:
    return a is not None and b is not None


@dataclass(frozen=True)
class RngState:
    torch_cpu: torch.Tensor
    torch_cuda: tuple[torch.Tensor, ...]
    numpy: Any
    python: Any
    extra: tuple[tuple[torch.Generator, torch.Tensor], ...]

    @classmethod
    def capture(cls, extra: Iterable[torch.Generator] = (), like: RngState | None = None,
                torch_only: bool = False) -> RngState:
        """The state of every RNG now. Parts equal to ``like``'s are shared with it, not stored again.
        ``torch_only``: torch's generators only (numpy's and Python's are slow to read); restoring
        such a state leaves numpy's and Python's as they are."""
        cuda = tuple(torch.cuda.get_rng_state_all()) if torch.cuda.is_available() and torch.cuda.is_initialized() else ()
        state = cls(
            torch_cpu=torch.get_rng_state(),
            torch_cuda=cuda,
            numpy=None if torch_only else np.random.get_state(),
            python=None if torch_only else random.getstate(),
            extra=tuple((g, g.get_state()) for g in extra),
        )
        if like is None:
            return state
        return cls(
            torch_cpu=like.torch_cpu if torch.equal(like.torch_cpu, state.torch_cpu) else state.torch_cpu,
            torch_cuda=like.torch_cuda if _same_tensors(like.torch_cuda, state.torch_cuda) else state.torch_cuda,
            numpy=like.numpy if _both(like.numpy, state.numpy) and _same_numpy_state(like.numpy, state.numpy) else state.numpy,
            python=like.python if _both(like.python, state.python) and like.python == state.python else state.python,
            extra=like.extra if _same_tensors([t for _, t in like.extra], [t for _, t in state.extra]) else state.extra,
        )

    def nbytes_beyond(self, other: RngState | None) -> int:
        """Memory this state holds that ``other`` does not share."""
        size = 0
        if other is None or self.torch_cpu is not other.torch_cpu:
            size += tensor_nbytes(self.torch_cpu)
        if other is None or self.torch_cuda is not other.torch_cuda:
            size += tensor_nbytes(list(self.torch_cuda))
        if self.numpy is not None and (other is None or self.numpy is not other.numpy):
            size += self.numpy[1].nbytes + 200
        if self.python is not None and (other is None or self.python is not other.python):
            size += 36 * len(self.python[1]) + 200  # a tuple of Python ints
        if other is None or self.extra is not other.extra:
            size += tensor_nbytes([t for _, t in self.extra])
        return size

    def restore(self) -> None:
        torch.set_rng_state(self.torch_cpu)
        if self.torch_cuda:
            torch.cuda.set_rng_state_all(list(self.torch_cuda))
        if self.numpy is not None:
            np.random.set_state(self.numpy)
        if self.python is not None:
            random.setstate(self.python)
        for gen, state in self.extra:
            gen.set_state(state)


@dataclass(frozen=True)
class StreamPosition:
    epoch: int
    index: int  # batches taken from the current epoch
    started: bool
    epoch_rng: RngState | None
    seq: int = 0  # batches taken since the stream began, every epoch counted


#: Fetches whose numpy and Python RNG draws are looked for, with each epoch's first (see BatchStream).
WATCHED_FETCHES = 8


@dataclass(frozen=True)
class _Taped:
    """A batch as the data first gave it, where it was, and every RNG's state just after its
    fetch (a fetch may draw from them)."""

    batch: Any
    epoch: int
    index: int
    epoch_rng: RngState | None
    rng: RngState
    nbytes: int


class BatchStream:
    """Batches from a re-iterable (a DataLoader), one epoch after another, with a seekable position.

    A position is (epoch, batches taken). The batches read since the oldest position a rewind
    can reach are kept on a tape, within the memory the session leaves it (:meth:`keep`): a seek
    back into the tape hands them out again from memory, each with its fetch's RNG draws, and the
    data's own iterator, still where it was, goes on after them. Past the tape (a generator's
    position cannot be copied), a seek restores the RNG as it was when that epoch's iterator was
    made, makes the iterator again and takes the same number of batches: a shuffled DataLoader
    yields the same batches again, at the cost of reading the epoch so far once more.
    """

    def __init__(self, source: Iterable[Any]):
        self.source = source
        self.generators = _generators(source)
        try:
            #: Batches an epoch, when the source says (a DataLoader over a map-style dataset); else None.
            self.length: int | None = len(source)  # type: ignore[arg-type]
        except TypeError:
            self.length = None
        # Where the next batch comes from: its epoch, the batches taken from that epoch, the
        # batches taken in all, whether that epoch began, and the RNG state it began with.
        self.epoch, self.index, self.seq = 1, 0, 0
        self._started = False
        self._epoch_rng: RngState | None = None
        # The data's own iterator and where it is: ahead of seq while batches come from the tape.
        self._it: Iterator[Any] | None = None
        self._live = StreamPosition(1, 0, False, None, 0)
        #: The batches from seq ``_tape_start`` up to the live position.
        self._tape: deque[_Taped] = deque()
        self._tape_start = 0
        self.tape_nbytes = 0
        self._limit: int | None = None  # bytes the tape may hold; None until the session says
        #: Why the last seek read the data again rather than taking it from the tape; None when it did not.
        self.note: str | None = None
        # Whether fetching a batch draws from numpy's or Python's RNG, which are slow to read
        # every batch: watched over the first WATCHED_FETCHES fetches and each epoch's first; None until then.
        self._other_rngs_drawn: bool | None = None
        self._watched = 0

    def _watch_other_rngs(self, before: RngState, after: RngState) -> None:
        drew = not (_same_numpy_state(before.numpy, after.numpy) and before.python == after.python)
        self._watched += 1
        if drew:
            self._other_rngs_drawn = True
        elif self._other_rngs_drawn is None and self._watched >= WATCHED_FETCHES:
            self._other_rngs_drawn = False

    def next(self) -> tuple[Any, int, int]:
        """The next batch, with its 1-based epoch and batch number."""
        if self.seq < self._live.seq:
            taped = self._tape[self.seq - self._tape_start]
            taped.rng.restore()
            self.epoch, self.index, self.seq = taped.epoch, taped.index, self.seq + 1
            self._started, self._epoch_rng = True, taped.epoch_rng
            return taped.batch, taped.epoch, taped.index
        before = RngState.capture(self.generators) if self._limit != 0 and self._other_rngs_drawn is None else None
        batch = self._read()
        self._live = self.position()
        if self._limit != 0:
            if before is None and self.index == 1:
                before = self._epoch_rng  # an epoch began: every RNG was read before its iterator was made
            previous = self._tape[-1].rng if self._tape else None
            full = self._other_rngs_drawn is not False or before is not None
            rng = RngState.capture(self.generators, like=previous, torch_only=not full)
            if before is not None:
                self._watch_other_rngs(before, rng)
            nbytes = tensor_nbytes(batch) + rng.nbytes_beyond(previous) + 64
            self._tape.append(_Taped(batch, self.epoch, self.index, self._epoch_rng, rng, nbytes))
            self.tape_nbytes += nbytes
        else:
            self._tape_start = self.seq
        return batch, self.epoch, self.index

    def _read(self) -> Any:
        """The next batch of the data's own iterator."""
        if self._it is None:
            self._epoch_rng = RngState.capture(self.generators)
            self._it = iter(self.source)
            self._started = True
        try:
            batch = next(self._it)
        except StopIteration:
            if self.index == 0:
                raise ValueError("data yielded no batches in a whole epoch") from None
            self.epoch += 1
            self.index = 0
            self._it = None
            self._started = False
            return self._read()
        self.index += 1
        self.seq += 1
        return batch

    def keep(self, limit: int, since: StreamPosition | None) -> None:
        """Hold the tape within ``limit`` bytes, and drop its batches before ``since`` (the oldest
        position a rewind can reach; None: none): the oldest go first."""
        self._limit = limit
        first = since.seq if since is not None else self._live.seq
        while self._tape and (self._tape_start < first or self.tape_nbytes > limit):
            self.tape_nbytes -= self._tape.popleft().nbytes
            self._tape_start += 1

    def position(self) -> StreamPosition:
        return StreamPosition(self.epoch, self.index, self._started, self._epoch_rng, self.seq)

    def seek(self, pos: StreamPosition) -> None:
        if self._tape_start <= pos.seq <= self._live.seq:  # from the tape (or where the data is)
            self.epoch, self.index, self.seq = pos.epoch, pos.index, pos.seq
            self._started, self._epoch_rng = pos.started, pos.epoch_rng
            self.note = None
            return
        self.note = None if pos.seq >= self._live.seq or not self._limit else (
            f"rewind read {pos.index} batches of epoch {pos.epoch} again: the batches since the checkpoint "
            "need more memory than --history-mb leaves them"
        )
        self._tape.clear()
        self.tape_nbytes = 0
        self.epoch, self.index, self.seq, self._it = pos.epoch, 0, pos.seq, None
        self._started, self._epoch_rng = False, pos.epoch_rng
        if pos.started and pos.epoch_rng is not None:
            pos.epoch_rng.restore()
            self._it = iter(self.source)
            self._started = True
            for _ in range(pos.index):
                next(self._it)
            self.index = pos.index
        self._live = self.position()
        self._tape_start = self.seq


#: Python objects a snapshot holds besides its tensors and RNG states (lists, dicts, the position).
SNAPSHOT_OVERHEAD = 2048


class Spares:
    """The tensors of a snapshot that is no longer kept, to copy into instead of fresh memory.

    A new snapshot of a large model costs more in page faults (first writes to
    new memory) than in copying; one taken into a dropped checkpoint's tensors
    of the same shape, dtype and device costs only the copy. ``copy`` hands each
    spare tensor out once; the rest are let go with this object.
    """

    def __init__(self, snapshot: Snapshot | None = None):
        self._free: dict[tuple[Any, ...], list[torch.Tensor]] = {}
        if snapshot is not None:
            for t in snapshot.tensors():
                self._free.setdefault(_key(t), []).append(t)

    def copy(self, t: torch.Tensor) -> torch.Tensor:
        """A copy of ``t``: into a spare tensor when one fits, else a clone."""
        free = self._free.get(_key(t))
        if free:
            return free.pop().copy_(t.detach())
        return t.detach().clone()


def _key(t: torch.Tensor) -> tuple[Any, ...]:
    return (t.shape, t.dtype, t.device)


#: Copies into fresh memory: for a copy that is handed out (restore), or when nothing is spare.
NO_SPARES = Spares()


def _copy_value(value: Any, spares: Spares = NO_SPARES) -> Any:
    if isinstance(value, torch.Tensor):
        return spares.copy(value)
    if isinstance(value, (int, float, str, bool, type(None), tuple)):
        return value
    return copy.deepcopy(value)


def _copy_state_dict(sd: dict[str, Any], spares: Spares = NO_SPARES) -> dict[str, Any]:
    """A copy of an optimizer state dict that shares nothing mutable with the optimizer.

    Tensors are copied (into ``spares`` where they fit) and other values copied;
    faster than ``copy.deepcopy`` on the many small hyper-parameter entries.
    """
    return {
        "state": {k: {name: _copy_value(v, spares) for name, v in entry.items()} for k, entry in sd["state"].items()},
        "param_groups": [{name: _copy_value(v) for name, v in group.items()} for group in sd["param_groups"]],
    }


def tensor_nbytes(obj: Any) -> int:
    """Bytes of the tensors in ``obj``: a tensor, or dicts, lists and tuples holding some."""
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(tensor_nbytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(tensor_nbytes(v) for v in obj)
    return 0


@dataclass
class Snapshot:
    """The state before one step. ``restore`` copies from it, so it can be restored again."""

    params: list[torch.Tensor]
    buffers: list[torch.Tensor]
    #: None: every grad was None; "zeros": every grad was None or zero; else one clone (or None) per tensor.
    grads: Any
    optimizer: dict[str, Any]
    rng: RngState
    stream: StreamPosition | None
    nbytes: int
    #: The scenario's namespace state (None when the snapshot was taken without it).
    scenario: SavedState | None = None

    @classmethod
    def capture(
        cls,
        params: list[torch.Tensor],
        buffers: list[torch.Tensor],
        optimizer: torch.optim.Optimizer,
        stream: BatchStream | None,
        grads_known_zero: bool,
        previous: Snapshot | None = None,
        spares: Spares = NO_SPARES,
        scenario: ScenarioState | None = None,
    ) -> Snapshot:
        """The state now; RNG states equal to ``previous``'s are shared with it and not counted again,
        and so are the namespace's tensors that did not change. Tensors are copied into ``spares``
        where they fit (see :class:`Spares`)."""
        saved = None
        if scenario is not None:
            saved = scenario.capture(previous.scenario if previous is not None else None)
        with torch.no_grad():
            saved_params = [spares.copy(p) for p in params]
            saved_buffers = [spares.copy(b) for b in buffers]
            if all(p.grad is None for p in params):
                grads: Any = None
            elif grads_known_zero:
                grads = "zeros"
            else:
                grads = [None if p.grad is None else spares.copy(p.grad) for p in params]
            opt_state = _copy_state_dict(optimizer.state_dict(), spares)
        rng = RngState.capture(stream.generators if stream else (), like=previous.rng if previous else None)
        nbytes = tensor_nbytes(saved_params) + tensor_nbytes(saved_buffers) + tensor_nbytes(opt_state["state"])
        nbytes += rng.nbytes_beyond(previous.rng if previous else None) + SNAPSHOT_OVERHEAD
        if isinstance(grads, list):
            nbytes += tensor_nbytes(grads)
        if saved is not None:
            nbytes += saved.nbytes
        return cls(saved_params, saved_buffers, grads, opt_state, rng, stream.position() if stream else None, nbytes, saved)

    def tensors(self) -> Iterator[torch.Tensor]:
        """Every tensor this snapshot holds (none of them is ever handed out: restore copies)."""
        yield from self.params
        yield from self.buffers
        if isinstance(self.grads, list):
            yield from (g for g in self.grads if g is not None)
        for entry in self.optimizer["state"].values():
            yield from (v for v in entry.values() if isinstance(v, torch.Tensor))

    def restore(
        self,
        params: list[torch.Tensor],
        buffers: list[torch.Tensor],
        optimizer: torch.optim.Optimizer,
        stream: BatchStream | None,
        scenario: ScenarioState | None = None,
    ) -> None:
        if scenario is not None and self.scenario is not None:
            scenario.restore(self.scenario)  # first: what the trained tensors hold is restored after
        with torch.no_grad():
            for p, saved in zip(params, self.params):
                p.copy_(saved)
            for b, saved in zip(buffers, self.buffers):
                b.copy_(saved)
            for i, p in enumerate(params):
                if self.grads is None:
                    p.grad = None
                elif self.grads == "zeros":
                    if p.grad is not None:
                        p.grad.zero_()
                elif self.grads[i] is None:
                    p.grad = None
                else:
                    p.grad = self.grads[i].clone()
        optimizer.load_state_dict(_copy_state_dict(self.optimizer))  # it adopts the tensors it is given
        if stream is not None and self.stream is not None:
            stream.seek(self.stream)
        self.rng.restore()
