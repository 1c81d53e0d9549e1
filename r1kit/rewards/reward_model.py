"""Preference reward models for general prompts (DeepSeek-R1 stage 4, "RL for all scenarios").

A reward model is any Hugging Face sequence-classification model (``AutoModelForSequenceClassification``,
one output logit) given by path. It scores *a part of* the response, as in the paper:

* ``part: summary`` (helpfulness): only the final summary, the text after the last ``</think>``
  (empty when the thinking never closes), so the thinking cannot buy helpfulness;
* ``part: whole`` (harmlessness): the whole response, thinking included, so harm hidden in the
  thinking is caught.

The model reads ``User: {problem}\\nAssistant: {part}`` (or the tokenizer's chat template with a
user and an assistant turn, when it has one) and its logit is the reward. :func:`register_reward_models`
registers each configured model as a batched reward under its name (one forward pass scores every
completion of a step that weighs it), so a GRPO config weights it like any rule reward
(``rewards_by_kind: {general: {helpfulness: 1.0}}``).

Training the pipeline's tiny reward models is :mod:`r1kit.pipeline.reward_models`.
"""
from __future__ import annotations

import torch

from r1kit.rewards import BatchedRewardFn, register
from r1kit.rewards.config import RewardModelConfig

PARTS = ("summary", "whole")
META_FILE = "r1kit_reward_model.json"


def response_part(completion: str, part: str) -> str:
    """The part of ``completion`` a reward model judges: ``summary`` or ``whole`` (module docstring)."""
    if part == "whole":
        return completion
    if part == "summary":
        return completion.rsplit("</think>", 1)[1] if "</think>" in completion else ""
    raise ValueError(f"unknown response part {part!r}; use one of {PARTS}")


def rm_text(problem: str, answer: str, tokenizer=None) -> str:
    """What the reward model reads: the problem as the user turn, ``answer`` as the assistant turn."""
    if tokenizer is not None and getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template([{"role": "user", "content": problem},
                                              {"role": "assistant", "content": answer}], tokenize=False)
    return f"User: {problem}\nAssistant: {answer.strip()}"


class RewardModel:
    """A loaded sequence-classification reward model; :meth:`score` gives one float per text."""

    def __init__(self, cfg: RewardModelConfig):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        if not cfg.path:
            raise ValueError("reward model: no path given")
        self.cfg = cfg
        self.tokenizer = AutoTokenizer.from_pretrained(cfg.path)
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.tokenizer.padding_side = "right"
        self.model = AutoModelForSequenceClassification.from_pretrained(cfg.path).eval()
        if self.model.config.pad_token_id is None:
            self.model.config.pad_token_id = self.tokenizer.pad_token_id

    @torch.no_grad()
    def score(self, problems: list[str], completions: list[str]) -> list[float]:
        """Reward of each completion to its problem, on the configured part only."""
        texts = [rm_text(p, response_part(c, self.cfg.part), self.tokenizer) for p, c in zip(problems, completions)]
        batch = self.tokenizer(texts, return_tensors="pt", padding=True, truncation=True,
                               max_length=self.cfg.max_length, add_special_tokens=False)
        return self.model(**batch).logits[:, 0].float().tolist()


_LOADED: dict[tuple, RewardModel] = {}


def load_reward_model(cfg: RewardModelConfig) -> RewardModel:
    """The reward model of ``cfg``, loaded once per process."""
    key = (cfg.path, cfg.part, cfg.max_length)
    if key not in _LOADED:
        _LOADED[key] = RewardModel(cfg)
    return _LOADED[key]


def reward_fn(cfg: RewardModelConfig) -> BatchedRewardFn:
    """A batched reward ``(completions, examples) -> scores`` scoring with the model of ``cfg``."""
    model = load_reward_model(cfg)

    def reward(completions: list[str], examples: list[dict]) -> list[float]:
        return model.score([str(example.get("problem", "")) for example in examples], completions)

    return reward


def register_reward_models(models: dict[str, RewardModelConfig]) -> None:
    """Register each reward model as a batched reward named by its key (replacing an earlier reward
    model of that name; a rule reward of that name is refused)."""
    for name, cfg in models.items():
        try:
            register(name, batched=True, replaceable=True)(reward_fn(cfg))
        except ValueError:
            raise ValueError(f"reward_models.{name}: a built-in reward has that name; choose another") from None
