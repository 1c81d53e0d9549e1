"""The options of a preference reward model used as a reward (``reward_models`` of a GRPO run),
free of torch so that a command checks them before any model code loads; the model itself is
:mod:`r1kit.rewards.reward_model`."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass
class RewardModelConfig:
    """One reward model used as a reward.

    path: HF folder or hub id of a sequence-classification model with one output (its logit is the reward).
    part: ``summary`` (text after the last ``</think>``: helpfulness) or ``whole`` (the whole
        response, thinking included: harmlessness).
    max_length: tokens the model reads (the start of the prompt is cut first, then the end of the part).
    """

    path: str = ""
    part: Literal["summary", "whole"] = "whole"
    max_length: int = 256
