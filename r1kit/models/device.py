"""Where a run's tensors live: the ``device`` option of every command, and its memory figure.

``auto`` is the first CUDA GPU when one is visible, else the CPU; ``cuda`` under ``torchrun`` is the
rank's own GPU (``cuda:LOCAL_RANK``). The policy, the reference, the sampling copy, the optimiser
state, the KV caches and the step's tensors are all put on it; host-side bookkeeping (finish
reasons, lengths of finished rows) is built on the CPU on purpose.
"""
from __future__ import annotations

import os
import resource
import sys

import torch


def resolve_device(name: str = "auto") -> torch.device:
    """The torch device of a ``device`` option (see the module docstring)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device(name)


def reset_peak_memory(device: torch.device) -> None:
    """Start a new peak-memory window (CUDA only; the CPU figure is the process's peak RSS)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_mb(device: torch.device) -> float:
    """CUDA: the most memory tensors held on ``device`` since the last reset
    (``torch.cuda.max_memory_allocated``); CPU: the process's peak resident set size so far."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB on Linux


def device_record(device: torch.device, dtype: str) -> dict:
    """What a step row says about where it ran: device, compute dtype, peak memory (MiB), and
    torch's CPU thread count at the end of the step (``threads: 0`` adapts it to the load)."""
    return {"device": str(device), "dtype": dtype, "peak_memory_mb": round(peak_memory_mb(device), 1),
            "threads": torch.get_num_threads()}
