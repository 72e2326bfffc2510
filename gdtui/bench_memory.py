"""The clock, the memory readings and the C allocator's settings of ``gdtui bench``.

:class:`Clock` reads wall time and peak memory on one device. The allocator
helpers give every way of the bench the same memory state (see
:mod:`gdtui.bench`): glibc's adaptive mmap and trim thresholds otherwise made
a way's speed depend on the ways timed before it. Linux and glibc only; on
other systems the readings are None and the helpers do nothing. Never imports
textual.
"""

from __future__ import annotations

import gc
import re
import time
from pathlib import Path


class Clock:
    """Wall time and peak memory on one device; CUDA and MPS work is waited for before each reading.

    Memory is CUDA's peak allocation on CUDA, the peak resident memory on the CPU
    (Linux), and not measured on MPS or where the RSS peak cannot be reset.
    """

    def __init__(self, device: str):
        import torch

        self.torch = torch
        kind = torch.device(device).type
        self.cuda, self.mps = kind == "cuda", kind == "mps"
        self.memory_kind = {"cuda": "cuda_max_allocated_growth", "cpu": "rss_peak_growth"}.get(kind)
        self._base: int | None = None

    def sync(self) -> None:
        if self.cuda:
            self.torch.cuda.synchronize()
        elif self.mps:
            self.torch.mps.synchronize()

    def now(self) -> float:
        self.sync()
        return time.perf_counter()

    def start_memory(self) -> None:
        if self.cuda:
            self.torch.cuda.reset_peak_memory_stats()
            self._base = self.torch.cuda.memory_allocated()
        elif self.memory_kind and _reset_rss_peak():
            self._base = _rss_kb("VmRSS") * 1024
        else:
            self._base = self.memory_kind = None

    def peak_growth_mb(self) -> float | None:
        if self._base is None:
            return None
        peak = self.torch.cuda.max_memory_allocated() if self.cuda else _rss_kb("VmHWM") * 1024
        return max(peak - self._base, 0) / 2**20


def _rss_kb(field_name: str) -> int:
    """``VmRSS`` or ``VmHWM`` of this process, in kB (0 where /proc is missing)."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return 0
    found = re.search(rf"^{field_name}:\s+(\d+)", status, re.M)
    return int(found.group(1)) if found else 0


def _reset_rss_peak() -> bool:
    """Set VmHWM back to the current RSS (Linux), so the next reading is this way's own peak."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return _rss_kb("VmHWM") > 0


def _libc():
    """glibc, for its allocator's settings; None elsewhere."""
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except (OSError, AttributeError):
        return None


#: glibc's mmap and trim thresholds for every way of the bench (a trainer process gets them as
#: MALLOC_MMAP_THRESHOLD_ and MALLOC_TRIM_THRESHOLD_).
MMAP_THRESHOLD, TRIM_THRESHOLD = 32 * 2**20, 2**30


def steady_allocator() -> None:
    """Fix glibc's mmap and trim thresholds (32 MB, 1 GB), so freed blocks are reused without page
    faults by every way alike, whatever ran before it."""
    libc = _libc()
    if libc is not None:
        libc.mallopt(-3, MMAP_THRESHOLD)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, TRIM_THRESHOLD)  # M_TRIM_THRESHOLD


def release_free_memory() -> None:
    """Hand the memory the C allocator holds free back to the system (glibc's malloc_trim)."""
    gc.collect()
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
