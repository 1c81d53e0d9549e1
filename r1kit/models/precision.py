"""Mixed precision for training: float32 master weights, bfloat16 compute.

Why not train a model whose parameters are stored in bfloat16: bf16 keeps 8 significant bits, so
the spacing between representable numbers near a weight ``w`` is about ``|w| / 128``. An AdamW step
moves each weight by roughly ``lr`` (1e-6 .. 1e-4), far below that spacing for most weights, and
the update rounds back to the old value (measured: at lr 2e-5 on N(0, 0.05) weights, 88% of
the weights never change and the mean change is 4% of the intended one). So with
``dtype: bfloat16`` the trainers keep the weights and optimiser state in float32 and put the
*compute* in bf16:

* the training forward and backward run under :func:`compute_context` (``torch.autocast``: matrix
  products in bf16, reductions and the loss in float32);
* sampling uses :class:`SamplingCopy`, a bf16 copy of the policy refreshed after every optimiser
  step (casting 135M weights takes ~0.1 s, much less than casting them at every decoded token);
* checkpoints are saved from the float32 weights, so nothing is rounded away between runs.
"""
from __future__ import annotations

import contextlib
import copy

import torch

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def check_dtype(dtype: str) -> torch.dtype:
    if dtype not in DTYPES:
        raise ValueError(f"dtype {dtype!r} is not one of {list(DTYPES)}")
    return DTYPES[dtype]


def compute_context(model: torch.nn.Module, dtype: str):
    """Autocast to ``dtype`` on the model's device, or nothing for float32."""
    if check_dtype(dtype) == torch.float32:
        return contextlib.nullcontext()
    device_type = next(model.parameters()).device.type
    return torch.autocast(device_type=device_type, dtype=DTYPES[dtype])


class SamplingCopy:
    """The policy in the sampling dtype: the policy itself for float32, else a cast copy.

    Call :meth:`refresh` after each optimiser step so that sampling never uses stale weights.
    """

    def __init__(self, policy: torch.nn.Module, dtype: str):
        self.policy = policy
        self.model = policy if check_dtype(dtype) == policy.dtype else copy.deepcopy(policy).to(DTYPES[dtype])
        self.model.eval()

    @torch.no_grad()
    def refresh(self) -> None:
        if self.model is self.policy:
            return
        target = self.model.state_dict()
        for name, value in self.policy.state_dict().items():
            target[name].copy_(value)
