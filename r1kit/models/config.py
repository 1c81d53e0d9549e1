"""The models' options, free of torch so that a command checks them before any model code loads:
LoRA (:class:`LoRAConfig`, and how a LoRA checkpoint folder is told from a model) and device names
(:func:`check_device`)."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from r1kit.config import NON_NEGATIVE, POSITIVE, ConfigError, Range

DEVICE_NAMES = re.compile(r"auto|cpu|cuda(:\d+)?")
ADAPTER_CONFIG = "adapter_config.json"  # a LoRA checkpoint folder holds this (and no config.json)


def check_device(value: str, key: str = "device") -> None:
    """A ConfigError naming ``key`` unless ``value`` is auto, cpu, cuda or cuda:N of a visible GPU."""
    if not isinstance(value, str) or not DEVICE_NAMES.fullmatch(value):
        raise ConfigError(f"{key}: {value!r} is not a device (auto, cpu, cuda or cuda:N)")
    if value.startswith("cuda"):
        import torch  # a GPU asked for: only torch can count them

        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(f"{key}: {value} asked for, but torch sees no CUDA GPU (torch {torch.__version__}, "
                              f"built with CUDA {torch.version.cuda}); use device=cpu or auto")
        index = int(value.split(":")[1]) if ":" in value else 0
        if index >= count:
            raise ConfigError(f"{key}: {value}: only {count} CUDA GPU(s) visible (cuda:0..cuda:{count - 1})")


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


def is_adapter_folder(path: str | Path) -> bool:
    p = Path(path)
    return (p / ADAPTER_CONFIG).exists() and not (p / "config.json").exists()


def adapter_base(folder: str | Path) -> str:
    """The base model an adapter checkpoint was trained on (``base_model_name_or_path`` of its
    ``adapter_config.json``: an alias such as ``tiny`` or a path)."""
    return json.loads((Path(folder) / ADAPTER_CONFIG).read_text())["base_model_name_or_path"]
