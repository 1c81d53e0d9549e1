"""Processes of the tests' own runs, read from /proc (Linux)."""
from __future__ import annotations

import subprocess
import time
from pathlib import Path


def child_pids(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (a trainer's rollout worker, the vLLM server r1kit started)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def start_and_wait_for(cmd: list[str], path: Path, timeout: float = 300, env: dict | None = None) -> subprocess.Popen:
    """Start ``cmd`` (output discarded; environment ``env``, or this one) and return once ``path``
    exists, the process ended, or ``timeout`` seconds passed: the moment a fault-injection test strikes."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.time() + timeout
    while not path.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    return proc
