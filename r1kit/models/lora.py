"""LoRA training with the ``peft`` library (``pip install 'r1kit[lora]'``).

With ``lora.r > 0`` the policy is the base model with low-rank adapters on ``target_modules``
(W x + (alpha / r) B A x, B initialised to zero, so training starts from the base exactly); only
A and B train and sit in the optimiser. The pieces the trainers use:

* :func:`r1kit.models.policy.load_policy` -- the trainable policy: a plain model, or the base with
  adapters (fresh, or read back from a checkpoint to resume);
* the reference (beta > 0) is the *same* model with its adapters switched off
  (``peft``'s ``disable_adapter``): no second copy in memory;
* :class:`MergedSamplingCopy` -- what samples: a plain model whose weights are W + (alpha / r) B A,
  refreshed after every optimiser step, so the decode loop pays nothing for the adapters;
* checkpoints hold the adapters only (``adapter_config.json``, ``adapter_model.safetensors``);
  :func:`r1kit.models.load_model` loads one as its base with the adapters merged
  (:func:`merge_adapters`), ``r1kit merge-lora`` writes that as a plain HF folder.
"""
from __future__ import annotations

import copy
from pathlib import Path

import torch

from r1kit.config import ConfigError
from r1kit.models.config import LoRAConfig
from r1kit.models.precision import check_dtype

def _peft_config(cfg: LoRAConfig):
    from peft import LoraConfig

    return LoraConfig(r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout,
                      target_modules=list(cfg.target_modules), bias="none", task_type="CAUSAL_LM")


def attach(model: torch.nn.Module, cfg: LoRAConfig, base_name: str):
    """``model`` with fresh adapters; ``base_name`` (e.g. ``tiny``) is recorded in the checkpoints'
    adapter config so that :func:`r1kit.models.load_model` finds the base on any machine."""
    from peft import get_peft_model

    try:
        peft_model = get_peft_model(model, _peft_config(cfg))
    except ValueError as exc:  # e.g. a target module the model does not have
        raise ConfigError(f"lora.target_modules: {exc}") from None
    peft_model.peft_config["default"].base_model_name_or_path = base_name  # a local folder: no hub lookup
    return peft_model


def merge_adapters(base: torch.nn.Module, folder: str | Path) -> torch.nn.Module:
    """``base`` with the adapters of ``folder`` merged into its weights (a plain model)."""
    from peft import PeftModel  # optional dependency (the lora extra)

    return PeftModel.from_pretrained(base, str(folder)).merge_and_unload()


def _lora_layers(peft_model):
    from peft.tuners.lora import LoraLayer

    prefix = "base_model.model."
    for name, module in peft_model.named_modules():
        if isinstance(module, LoraLayer) and name.startswith(prefix):
            yield name[len(prefix):], module


class MergedSamplingCopy:
    """The LoRA policy merged into a plain model in the sampling dtype (same interface as
    :class:`r1kit.models.precision.SamplingCopy`): W <- W_base + (alpha / r) B A for every adapted
    layer at each :meth:`refresh`; the other weights are frozen and copied once."""

    def __init__(self, policy, dtype: str):
        self.policy = policy
        with torch.no_grad():
            self.model = copy.deepcopy(policy).merge_and_unload().to(check_dtype(dtype))
        self.model.eval()
        self._targets = [(module, self.model.get_submodule(name).weight) for name, module in _lora_layers(policy)]

    @torch.no_grad()
    def refresh(self) -> None:
        for module, target in self._targets:
            base = module.get_base_layer().weight
            target.copy_(base + module.get_delta_weight("default").to(base.dtype))
