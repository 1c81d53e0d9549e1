"""LoRA training with the ``peft`` library (``pip install 'r1kit[lora]'``).

With ``lora.r > 0`` the policy is the base model with low-rank adapters on ``target_modules``
(W x + (alpha / r) B A x, B initialised to zero, so training starts from the base exactly); only
A and B train and sit in the optimiser. The pieces the trainers use:

* :func:`load_policy` -- the trainable policy: a plain model, or the base with adapters (fresh, or
  read back from a checkpoint to resume);
* the reference (beta > 0) is the *same* model with its adapters switched off
  (``peft``'s ``disable_adapter``): no second copy in memory;
* :class:`MergedSamplingCopy` -- what samples: a plain model whose weights are W + (alpha / r) B A,
  refreshed after every optimiser step, so the decode loop pays nothing for the adapters;
* checkpoints hold the adapters only (``adapter_config.json``, ``adapter_model.safetensors``);
  :func:`load_merged` (and ``r1kit merge-lora``) turns one into a plain HF folder's model.
"""
from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import torch

from r1kit.config import NON_NEGATIVE, POSITIVE, ConfigError, Range

ADAPTER_CONFIG = "adapter_config.json"


@dataclass
class LoRAConfig:
    """Low-rank adapters (LoRA, Hu et al. 2021) instead of full fine-tuning.

    r: the adapters' rank; 0 (default) trains every weight. alpha: scale numerator, the update is
        (alpha / r) B A. dropout: dropout on the adapters' input during training.
    target_modules: names of the Linear layers that get adapters (the attention and MLP projections
        of Llama/Qwen2/SmolLM2 by default); the LM head and embeddings stay frozen.
    """

    r: int = 0
    alpha: float = 16.0
    dropout: float = 0.0
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj",
                                                               "gate_proj", "up_proj", "down_proj"])

    ranges: ClassVar = {"r": NON_NEGATIVE, "alpha": POSITIVE, "dropout": Range(0, 1, open_high=True)}

    @property
    def enabled(self) -> bool:
        return self.r > 0

    def check(self, prefix: str = "") -> None:
        if not self.enabled:
            return
        if not self.target_modules:
            raise ConfigError(f"{prefix}target_modules: no layer named to put adapters on")
        try:
            import peft  # noqa: F401
        except ImportError:
            raise ConfigError(f"{prefix}r: LoRA needs the peft package (pip install 'r1kit[lora]')") from None


def _peft_config(cfg: LoRAConfig):
    from peft import LoraConfig

    return LoraConfig(r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout,
                      target_modules=list(cfg.target_modules), bias="none", task_type="CAUSAL_LM")


def attach(model: torch.nn.Module, cfg: LoRAConfig, base_name: str):
    """``model`` with fresh adapters; ``base_name`` (e.g. ``tiny``) is recorded in the checkpoints'
    adapter config so that :func:`load_merged` finds the base on any machine."""
    from peft import get_peft_model

    try:
        peft_model = get_peft_model(model, _peft_config(cfg))
    except ValueError as exc:  # e.g. a target module the model does not have
        raise ConfigError(f"lora.target_modules: {exc}") from None
    peft_model.peft_config["default"].base_model_name_or_path = base_name  # a local folder: no hub lookup
    return peft_model


def load_policy(model_path: str, base_name: str, checkpoint: Path | None, cfg: LoRAConfig, device):
    """The float32 trainable policy on ``device``: the model (or checkpoint) itself without LoRA;
    with LoRA the base plus adapters, fresh or those of ``checkpoint`` (to resume exactly)."""
    from r1kit.models import load_model

    if not cfg.enabled:
        return load_model(str(checkpoint) if checkpoint else model_path, "float32", device)
    base = load_model(model_path, "float32", device)
    if checkpoint is None:
        return attach(base, cfg, model_path)
    from peft import PeftModel

    return PeftModel.from_pretrained(base, str(checkpoint), is_trainable=True).to(device)


def trainable_parameters(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    """What the optimiser holds: every parameter that requires a gradient (only A and B with LoRA)."""
    return [p for p in model.parameters() if p.requires_grad]


def adapters_off(model: torch.nn.Module):
    """A context in which a LoRA policy computes as its base model (the reference); a no-op for a
    model without adapters."""
    disable = getattr(model, "disable_adapter", None)
    return disable() if disable is not None else contextlib.nullcontext()


def is_adapter_folder(path: str | Path) -> bool:
    p = Path(path)
    return (p / ADAPTER_CONFIG).exists() and not (p / "config.json").exists()


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
        import copy

        from r1kit.models.precision import check_dtype

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


def sampling_copy(policy, dtype: str):
    """The policy's sampling copy: merged adapters with LoRA, else the plain (possibly cast) copy."""
    from r1kit.models.precision import SamplingCopy

    return MergedSamplingCopy(policy, dtype) if hasattr(policy, "peft_config") else SamplingCopy(policy, dtype)


def load_merged(folder: str | Path, dtype: str = "float32", device="cpu"):
    """A plain model from an adapter checkpoint: its base (named in ``adapter_config.json``) with
    the adapters merged in."""
    from peft import PeftModel

    from r1kit.models import load_model, resolve_model_path
    from r1kit.models.precision import check_dtype

    base_name = json.loads((Path(folder) / ADAPTER_CONFIG).read_text())["base_model_name_or_path"]
    base = load_model(resolve_model_path(base_name), "float32", device)
    merged = PeftModel.from_pretrained(base, str(folder)).merge_and_unload()
    return merged.to(check_dtype(dtype)).eval()


def merge_lora(checkpoint: str | Path, out: str | Path, dtype: str = "float32") -> Path:
    """Write ``out``: a plain HF folder (config, weights, tokenizer) of ``checkpoint``'s base with
    its adapters merged in (``r1kit merge-lora``)."""
    from r1kit.models import load_tokenizer

    if not is_adapter_folder(checkpoint):
        raise FileNotFoundError(f"{checkpoint}: no {ADAPTER_CONFIG} (not a LoRA checkpoint)")
    model = load_merged(checkpoint, dtype)
    model.save_pretrained(out)
    load_tokenizer(str(checkpoint)).save_pretrained(out)
    return Path(out)


def reference_for(policy, model_path: str, cfg: LoRAConfig, dtype: str, device):
    """The frozen reference of a beta > 0 run: with LoRA the policy itself, used under
    :func:`adapters_off`; else a second copy of the base in the compute dtype."""
    from r1kit.models import load_model

    return policy if cfg.enabled else load_model(model_path, dtype, device)


def plain_model(model: torch.nn.Module) -> torch.nn.Module:
    """A model without adapters to save as an HF folder: a merged copy of a LoRA model, else itself."""
    import copy

    if not hasattr(model, "peft_config"):
        return model
    with torch.no_grad():
        return copy.deepcopy(model).merge_and_unload()
