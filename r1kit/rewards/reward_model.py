"""Preference reward models for general prompts (DeepSeek-R1 stage 4, "RL for all scenarios").

A reward model is any Hugging Face sequence-classification model (``AutoModelForSequenceClassification``,
one output logit) given by path. It scores *a part of* the response, as in the paper:

* ``part: summary`` (helpfulness): only the final summary, the text after the last ``</think>``
  (empty when the thinking never closes), so the thinking cannot buy helpfulness;
* ``part: whole`` (harmlessness): the whole response, thinking included, so harm hidden in the
  thinking is caught.

The model reads ``User: {problem}\\nAssistant: {part}`` (or the tokenizer's chat template with a
user and an assistant turn, when it has one) and its logit is the reward. :func:`register_reward_models`
registers each configured model as an ordinary reward under its name, so a GRPO config weights it
like any rule reward (``rewards_by_kind: {general: {helpfulness: 1.0}}``).

:func:`train_reward_model` trains a tiny Bradley-Terry reward model (a 2-layer Llama with a scalar
head, on the policy's tokenizer) on a preference set ``{prompt, chosen, rejected}`` of whole
responses, reading only the part it will score:

    loss = -log sigmoid(r(prompt, chosen) - r(prompt, rejected))

so that r is a log-odds of preference (Bradley & Terry 1952; Ouyang et al. 2022).
"""
from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import torch
from tqdm.auto import tqdm

from r1kit.rewards import REWARD_FUNCS, RewardFn

PARTS = ("summary", "whole")
META_FILE = "r1kit_reward_model.json"


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


def reward_fn(cfg: RewardModelConfig) -> RewardFn:
    """A reward function ``(completion, example) -> float`` scoring with the model of ``cfg``."""
    model = load_reward_model(cfg)

    def reward(completion: str, example: dict) -> float:
        return model.score([str(example.get("problem", ""))], [completion])[0]

    reward.__name__ = f"reward_model_{cfg.part}"
    return reward


def register_reward_models(models: dict[str, RewardModelConfig]) -> None:
    """Register each reward model as a reward named by its key (replacing an earlier one of that name)."""
    for name, cfg in models.items():
        if name in REWARD_FUNCS and not getattr(REWARD_FUNCS[name], "__name__", "").startswith("reward_model_"):
            raise ValueError(f"reward_models.{name}: a built-in reward has that name; choose another")
        REWARD_FUNCS[name] = reward_fn(cfg)


# ---- training a tiny Bradley-Terry reward model ------------------------------------------------
@dataclass
class RewardModelTrainConfig:
    """Training a tiny Bradley-Terry reward model on a generated preference set.

    tokenizer: the model whose tokenizer the reward model uses (the policy's base, so it reads its
        text); empty: ``tiny-mixed`` (the pipeline sets its ``base``).
    pairs: preference pairs generated (``r1kit.data.general.preference_pairs``); 10% are held out
        to measure pair accuracy. hidden_size/num_layers: the Llama body (one scalar output).
    steps/batch_size/lr: AdamW on the Bradley-Terry loss. max_length: tokens per text. seed: data and init.
    """

    tokenizer: str = ""
    pairs: int = 2000
    hidden_size: int = 64
    num_layers: int = 2
    steps: int = 150
    batch_size: int = 32
    lr: float = 2e-3
    max_length: int = 128
    seed: int = 0


def bradley_terry_loss(chosen: torch.Tensor, rejected: torch.Tensor) -> torch.Tensor:
    """Mean of ``-log sigmoid(r_chosen - r_rejected)``."""
    return -torch.nn.functional.logsigmoid(chosen - rejected).mean()


def _tiny_classifier(tokenizer, cfg: RewardModelTrainConfig):
    from transformers import LlamaConfig, LlamaForSequenceClassification

    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=cfg.hidden_size, intermediate_size=cfg.hidden_size * 3,
                         num_hidden_layers=cfg.num_layers, num_attention_heads=4, num_key_value_heads=4,
                         max_position_embeddings=512, num_labels=1, pad_token_id=tokenizer.pad_token_id,
                         eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.eos_token_id)
    return LlamaForSequenceClassification(config)


def _rewards(model, tokenizer, prompts: list[str], texts: list[str], max_length: int, part: str) -> torch.Tensor:
    """Scores of ``texts`` (whole responses) read as the scorer reads them: only ``part`` of each."""
    batch = tokenizer([rm_text(p, response_part(t, part), tokenizer) for p, t in zip(prompts, texts)], return_tensors="pt", padding=True,
                      truncation=True, max_length=max_length, add_special_tokens=False)
    return model(**batch).logits[:, 0]


def pair_accuracy(model, tokenizer, pairs: list[dict], max_length: int, part: str = "whole") -> float:
    """Share of pairs whose chosen response scores above the rejected one (on ``part``)."""
    with torch.no_grad():
        prompts = [p["prompt"] for p in pairs]
        chosen = _rewards(model, tokenizer, prompts, [p["chosen"] for p in pairs], max_length, part)
        rejected = _rewards(model, tokenizer, prompts, [p["rejected"] for p in pairs], max_length, part)
    return (chosen > rejected).float().mean().item()


def train_reward_model(pairs: list[dict], out: str | Path, cfg: RewardModelTrainConfig = RewardModelTrainConfig(),
                       part: str = "whole", progress: bool = True) -> dict:
    """Train a Bradley-Terry reward model on ``pairs`` of whole responses, reading only ``part`` of
    each (``summary`` or ``whole``, exactly as :class:`RewardModel` will score), and save it (an HF
    folder) with its metrics."""
    response_part("", part)  # an unknown part fails before training
    from r1kit.models import load_tokenizer

    torch.manual_seed(cfg.seed)
    tokenizer = load_tokenizer(cfg.tokenizer or "tiny-mixed")
    tokenizer.padding_side = "right"
    pairs = list(pairs)
    random.Random(cfg.seed).shuffle(pairs)
    n_test = max(1, len(pairs) // 10)
    test, train = pairs[:n_test], pairs[n_test:]
    model = _tiny_classifier(tokenizer, cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    generator = torch.Generator().manual_seed(cfg.seed)
    start, losses = time.time(), []
    model.train()
    for step in tqdm(range(cfg.steps), desc=f"reward model {Path(out).name}", disable=not progress, mininterval=1):
        rows = [train[i] for i in torch.randint(len(train), (cfg.batch_size,), generator=generator).tolist()]
        prompts = [r["prompt"] for r in rows]
        loss = bradley_terry_loss(
            _rewards(model, tokenizer, prompts, [r["chosen"] for r in rows], cfg.max_length, part),
            _rewards(model, tokenizer, prompts, [r["rejected"] for r in rows], cfg.max_length, part))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    model.eval()
    meta = {"pairs": len(pairs), "train_pairs": len(train), "test_pairs": len(test),
            "final_loss": sum(losses[-10:]) / len(losses[-10:]),
            "test_pair_accuracy": pair_accuracy(model, tokenizer, test, cfg.max_length, part), "part": part,
            "seconds": round(time.time() - start, 1), "config": asdict(cfg)}
    out = Path(out)
    tmp = out.with_name(f".tmp-{out.name}")
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / META_FILE).write_text(json.dumps(meta, indent=2))
    if out.exists():
        import shutil
        shutil.rmtree(out)
    tmp.rename(out)
    return meta
