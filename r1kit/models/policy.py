"""The trained policy and its companions, with or without LoRA (:mod:`r1kit.models.lora`).

Every trainer loads its policy, optimiser parameters, sampling copy and reference here, so that a
LoRA run and a full fine-tune differ in one place:

* :func:`load_policy`: the float32 trainable policy (the base plus fresh or resumed adapters with LoRA);
* :func:`trainable_parameters`: what the optimiser holds;
* :func:`sampling_copy`: the copy the rollout engine samples with (adapters merged, sampling dtype);
* :func:`reference_for` / :func:`adapters_off`: the frozen reference of a ``beta > 0`` run;
* :func:`plain_model` / :func:`merge_lora`: what is saved as a plain HF folder.

Usage::

    policy = load_policy(resolve_model_path("tiny"), "tiny", None, LoRAConfig(r=16), "cpu")
    optimizer = torch.optim.AdamW(trainable_parameters(policy), lr=1e-4)
"""
from __future__ import annotations

import contextlib
import copy
from pathlib import Path

import torch

from r1kit.models import load_model, load_tokenizer
from r1kit.models.config import ADAPTER_CONFIG, LoRAConfig, is_adapter_folder
from r1kit.models.lora import MergedSamplingCopy, attach
from r1kit.models.precision import SamplingCopy


def load_policy(model_path: str, base_name: str, checkpoint: Path | None, cfg: LoRAConfig, device):
    """The float32 trainable policy on ``device``: the model (or checkpoint) itself without LoRA;
    with LoRA the base plus adapters, fresh or those of ``checkpoint`` (to resume exactly)."""
    if not cfg.enabled:  # (a LoRA checkpoint given as the model comes merged, its weights frozen: trained whole)
        return load_model(str(checkpoint) if checkpoint else model_path, "float32", device).requires_grad_(True)
    base = load_model(model_path, "float32", device)
    if checkpoint is None:
        return attach(base, cfg, model_path)
    from peft import PeftModel  # optional dependency (the lora extra)

    return PeftModel.from_pretrained(base, str(checkpoint), is_trainable=True).to(device)


def trainable_parameters(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    """What the optimiser holds: every parameter that requires a gradient (only A and B with LoRA)."""
    return [p for p in model.parameters() if p.requires_grad]


def adapters_off(model: torch.nn.Module):
    """A context in which a LoRA policy computes as its base model (the reference); a no-op for a
    model without adapters."""
    disable = getattr(model, "disable_adapter", None)
    return disable() if disable is not None else contextlib.nullcontext()


def sampling_copy(policy, dtype: str):
    """The policy's sampling copy: merged adapters with LoRA, else the plain (possibly cast) copy."""
    return MergedSamplingCopy(policy, dtype) if hasattr(policy, "peft_config") else SamplingCopy(policy, dtype)


def reference_for(policy, model_path: str, cfg: LoRAConfig, dtype: str, device):
    """The frozen reference of a beta > 0 run: with LoRA the policy itself, used under
    :func:`adapters_off`; else a second copy of the base in the compute dtype."""
    return policy if cfg.enabled else load_model(model_path, dtype, device)


def plain_model(model: torch.nn.Module) -> torch.nn.Module:
    """A model without adapters to save as an HF folder: a merged copy of a LoRA model, else itself."""
    if not hasattr(model, "peft_config"):
        return model
    with torch.no_grad():
        return copy.deepcopy(model).merge_and_unload()


def merge_lora(checkpoint: str | Path, out: str | Path, dtype: str = "float32") -> Path:
    """Write ``out``: a plain HF folder (config, weights, tokenizer) of ``checkpoint``'s base with
    its adapters merged in (``r1kit merge-lora``)."""
    if not is_adapter_folder(checkpoint):
        raise FileNotFoundError(f"{checkpoint}: no {ADAPTER_CONFIG} (not a LoRA checkpoint)")
    model = load_model(str(checkpoint), dtype)
    model.save_pretrained(out)
    load_tokenizer(str(checkpoint)).save_pretrained(out)
    return Path(out)
