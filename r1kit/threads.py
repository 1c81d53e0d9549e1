"""CPU thread policy: no spinning workers, one inter-op thread, a thread count fixed by the machine.

Why: torch's OpenMP workers spin at every barrier (up to ~300k iterations) waiting for the
slowest thread. On a CPU shared with other work, the thread that lost its core holds the others
spinning, and the spinning burns the cores the competing work needs: both slow down far beyond
their fair share. Three settings avoid it:

* **Passive waiting** (``OMP_WAIT_POLICY=PASSIVE``, ``KMP_BLOCKTIME=0`` for Intel's runtime): idle
  workers sleep at once. The OpenMP runtime reads this when it loads, so it is set when ``r1kit``
  is imported, before torch (``prefer_passive_waiting``); a value already in the environment wins.
* **One inter-op thread**: r1kit runs no concurrent graph branches; extra inter-op threads only
  add more workers to schedule.
* **The intra-op thread count is a property of the machine, never of its load**: float sums
  depend on how work is split between threads, so a count chosen from the load would make seeded
  runs irreproducible. ``auto`` (``threads: 0``) is torch's default, capped by the CPUs this
  process may run on (its affinity mask and cgroup quota, which torch's default ignores).

``R1KIT_THREAD_POLICY=0`` turns the first two off (``benchmarks/contention.py`` compares both).
"""
from __future__ import annotations

import math
import os
import sys
from pathlib import Path

_TORCH_DEFAULT: int | None = None  # torch's own default intra-op count, read before we change it


def enabled() -> bool:
    return os.environ.get("R1KIT_THREAD_POLICY", "1") != "0"


def prefer_passive_waiting() -> None:
    """Ask OpenMP to put idle workers to sleep; a no-op once torch is loaded (too late to matter)."""
    if enabled() and "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        os.environ.setdefault("KMP_BLOCKTIME", "0")


def cpu_budget() -> int:
    """CPUs this process may use: its affinity mask, capped by a cgroup v2 CPU quota if any."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cpus = min(cpus, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return cpus


def resolve(threads: int) -> int:
    """The intra-op thread count for a ``threads`` option: itself when > 0, else ``auto``."""
    global _TORCH_DEFAULT
    import torch

    if _TORCH_DEFAULT is None:
        _TORCH_DEFAULT = torch.get_num_threads()
    return threads if threads > 0 else min(_TORCH_DEFAULT, cpu_budget())


def apply(threads: int = 0) -> int:
    """Set torch's threads for a ``threads`` option (0: auto); returns the intra-op count."""
    import torch

    count = resolve(threads)
    torch.set_num_threads(count)
    if enabled():
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:  # already set, or inter-op work already started: keep what is there
            pass
    return count
