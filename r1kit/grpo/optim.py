"""The trainers' optimiser: AdamW, fused into one kernel per step where torch has it."""
from __future__ import annotations

import inspect

import torch


def adamw(params, lr: float, weight_decay: float, betas: tuple[float, float] = (0.9, 0.999)) -> torch.optim.AdamW:
    """AdamW; fused (one pass over each parameter instead of a dozen ``_foreach`` passes) when every
    parameter lives on a device whose fused kernel torch ships (CPU and CUDA since torch 2.4)."""
    params = list(params)
    fused = ("fused" in inspect.signature(torch.optim.AdamW).parameters
             and all(p.device.type in ("cpu", "cuda") and p.dtype in (torch.float32, torch.bfloat16) for p in params))
    return torch.optim.AdamW(params, lr=lr, betas=betas, weight_decay=weight_decay, fused=fused or None)
