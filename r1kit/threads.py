"""CPU thread policy: as many intra-op threads as the CPUs other processes leave free, one inter-op thread.

Why: torch's OpenMP workers spin at every barrier waiting for the slowest thread. When another
process takes a core, the thread that lost its core holds the others spinning at every parallel
region, and the spinning takes the cores the competing work needs: a 2-thread run beside one
busy process was 4x slower than alone, not the fair 2x. Waiting passively instead
(``OMP_WAIT_POLICY=PASSIVE``) avoids the collapse but costs a wake-up at every region: the quiet
default run became 1.6x slower. So r1kit keeps torch's fast spinning and runs no more threads
than there are free CPUs:

* ``threads: 0`` (*auto*, the default) starts at torch's own count, capped by the CPUs this
  process may run on (affinity mask, cgroup quota), and a :class:`Governor` re-measures, every
  half second of sampling or training, how much CPU *other* processes used on those CPUs
  (``/proc/stat`` minus this process's own time; niced processes are not counted where they
  yield to ours) and sets the count to what is left (at least 1).
* ``threads: N`` fixes the count at N (no governor).
* One inter-op thread: r1kit runs no concurrent graph branches.

Results: a thread count changes how some float sums are split. On the embedded tiny model, 1 and
2 threads sample the same tokens and compute bit-identical gradients, but sampled log-probs differ
in the last bits (< 1e-5; tested), so a run whose count the governor changed can, rarely, draw a
different token where a uniform falls that close to a boundary. A seeded run on a quiet machine
always repeats itself; set ``threads: N`` when bit-exact repeats under any load matter.

``R1KIT_THREAD_POLICY=0`` turns the governor and the inter-op setting off (torch's defaults;
``benchmarks/contention.py --compare`` measures both; ``--command eval`` / ``sample`` the other
sampling commands).

Every command applies the policy (``zero``, ``sft``, ``sample``, ``eval``, ``distill``, the
pipeline; the benchmarks too). A program that calls r1kit's functions directly (``r1kit.rollout``'s
``sample``) keeps torch's fixed count until it calls ``apply(0)`` itself: under load that is the
collapse described above.
"""
from __future__ import annotations

import math
import os
import time
from pathlib import Path

_TORCH_DEFAULT: int | None = None  # torch's own default intra-op count, read before we change it


def enabled() -> bool:
    return os.environ.get("R1KIT_THREAD_POLICY", "1") != "0"


def _quota_cpus() -> int | None:
    """CPUs allowed by a cgroup v2 CPU quota, or None without one."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        return None if quota == "max" else max(1, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        return None


def cpu_budget() -> int:
    """CPUs this process may use: its affinity mask, capped by a cgroup v2 CPU quota if any."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    quota = _quota_cpus()
    return min(cpus, quota) if quota else cpus


def resolve(threads: int) -> int:
    """The intra-op thread count for a ``threads`` option: itself when > 0, else ``auto``."""
    global _TORCH_DEFAULT
    import torch

    if _TORCH_DEFAULT is None:
        _TORCH_DEFAULT = torch.get_num_threads()
    return threads if threads > 0 else min(_TORCH_DEFAULT, cpu_budget())


def _busy_seconds(cpus: set[int], count_niced: bool) -> float | None:
    """CPU seconds spent busy since boot, summed over ``cpus`` (not idle or iowait; niced work only
    with ``count_niced``, see ``_niced_competes``); None if unknown."""
    try:
        lines = Path("/proc/stat").read_text().splitlines()
    except OSError:
        return None
    busy = 0
    for line in lines:
        name, *ticks = line.split()
        if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus:
            user, nice, system, idle, iowait, irq, softirq, steal = (int(t) for t in ticks[:8])
            busy += user + system + irq + softirq + steal + (nice if count_niced else 0)
    return busy / os.sysconf("SC_CLK_TCK")


def _niced_competes() -> bool:
    """Whether niced processes take CPU from this one: yes when it is niced itself, or when the
    kernel groups processes by session (autogroup: nice then only orders a session's own work)."""
    try:
        if Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip() == "1":
            return True
    except OSError:
        pass
    return hasattr(os, "getpriority") and os.getpriority(os.PRIO_PROCESS, 0) > 0


def _own_seconds() -> float:
    t = os.times()
    return t.user + t.system


TAKEN_ABOVE = 0.6  # share of a CPU that other processes must use for it to count as taken


def free_cpus(cpus: int, others: float) -> int:
    """CPUs left for this process when other processes use ``others`` CPUs' worth of time: a CPU
    counts as taken once more than ``TAKEN_ABOVE`` of it is used (measurement noise and light
    background work take none); at least 1. E.g. 2 CPUs: others 0.4 -> 2, 0.7 -> 1, 1.7 -> 1."""
    return max(1, cpus - max(0, math.ceil(others - TAKEN_ABOVE)))


class Governor:
    """Sets torch's intra-op thread count to the CPUs that other processes leave free.

    ``reset()`` starts a measuring window (call it when compute starts, so that waits for reward
    workers or disk are not measured); ``tick()`` is cheap and called from hot loops: once the
    window is ``interval`` seconds old it measures the other processes' CPU use over it,
    ``others = (busy seconds on our CPUs - our own CPU seconds) / wall seconds``, and sets the count
    to ``free_cpus(cpus, others)``, at most ``ceiling``.
    """

    def __init__(self, ceiling: int, cpus: set[int], interval: float = 0.5):
        self.ceiling, self.cpus, self.interval = ceiling, cpus, interval
        self.count_niced = _niced_competes()  # fixed for the process: read once, not at every tick
        self.count = ceiling
        self.others = 0.0
        self._start: tuple[float, float, float] | None = None

    def _sample(self) -> tuple[float, float, float] | None:
        busy = _busy_seconds(self.cpus, self.count_niced)
        return None if busy is None else (time.perf_counter(), busy, _own_seconds())

    def reset(self) -> None:
        self._start = self._sample()

    def tick(self) -> None:
        if self._start is None or time.perf_counter() - self._start[0] < self.interval:
            return
        now = self._sample()
        if now is None:
            return
        wall, busy, own = (b - a for a, b in zip(self._start, now))
        self._start = now
        self.others = max(0.0, (busy - own) / wall)
        count = min(self.ceiling, free_cpus(len(self.cpus), self.others))
        if count != self.count:
            import torch

            torch.set_num_threads(count)
            self.count = count


_GOVERNOR: Governor | None = None


def apply(threads: int = 0) -> int:
    """Set torch's threads for a ``threads`` option (0: auto, governed); returns the starting count."""
    global _GOVERNOR
    import torch

    count = resolve(threads)
    torch.set_num_threads(count)
    _GOVERNOR = None
    if enabled():
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:  # already set, or inter-op work already started: keep what is there
            pass
        cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()
        if threads <= 0 and cpus and _quota_cpus() is None and _busy_seconds(cpus, False) is not None:
            _GOVERNOR = Governor(count, cpus)
    return count


def governor() -> Governor | None:
    """The governor set by ``apply(0)``, if any."""
    return _GOVERNOR


def reset() -> None:
    """Start a new measuring window (compute is about to start)."""
    if _GOVERNOR is not None:
        _GOVERNOR.reset()


def tick() -> None:
    """Adapt the thread count if a window has passed; a no-op without a governor."""
    if _GOVERNOR is not None:
        _GOVERNOR.tick()
