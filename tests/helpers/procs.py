"""Processes of the tests' own runs, read from /proc (Linux)."""
from __future__ import annotations

import subprocess
import time
from pathlib import Path


def _stats() -> list[tuple[int, list[str]]]:
    """``(pid, fields after the command name)`` of every process (``/proc/PID/stat``)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            out.append((int(stat.parent.name), stat.read_text().rsplit(")", 1)[1].split()))
        except OSError:
            continue
    return out


def child_pids(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (a trainer's rollout worker, the vLLM server r1kit started)."""
    return [child for child, fields in _stats() if int(fields[1]) == pid]


def alive(pid: int) -> bool:
    """``pid`` exists and is not a zombie (exited, not yet reaped)."""
    return any(other == pid and fields[0] != "Z" for other, fields in _stats())


def live_in_group(pgid: int) -> list[int]:
    """The processes of process group ``pgid`` that still run (zombies left out)."""
    return [pid for pid, fields in _stats() if int(fields[2]) == pgid and fields[0] != "Z"]


def wait_until_gone(pids: list[int], timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for every process in ``pids`` to exit; True if they did."""
    deadline = time.time() + timeout
    while any(alive(pid) for pid in pids) and time.time() < deadline:
        time.sleep(0.1)
    return not any(alive(pid) for pid in pids)


def start_and_wait_for(cmd: list[str], path: Path, timeout: float = 300, env: dict | None = None) -> subprocess.Popen:
    """Start ``cmd`` (output discarded; environment ``env``, or this one) and return once ``path``
    exists, the process ended, or ``timeout`` seconds passed: the moment a fault-injection test strikes."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.time() + timeout
    while not path.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    return proc
