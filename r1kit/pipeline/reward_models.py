"""Training a tiny Bradley-Terry reward model (the R1 pipeline's stage 4 scorers).

:func:`train_reward_model` trains a 2-layer Llama with a scalar head, on the policy's tokenizer, on a
preference set ``{prompt, chosen, rejected}`` of whole responses, reading only the part it will score
(:func:`r1kit.rewards.reward_model.response_part`):

    loss = -log sigmoid(r(prompt, chosen) - r(prompt, rejected))

so that r is a log-odds of preference (Bradley & Terry 1952; Ouyang et al. 2022). The trained folder
is scored by :class:`r1kit.rewards.reward_model.RewardModel` like any sequence-classification model.
"""
from __future__ import annotations

import json
import random
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import torch
from tqdm.auto import tqdm

from r1kit.models import load_tokenizer
from r1kit.pipeline.config import RewardModelTrainConfig
from r1kit.rewards.reward_model import META_FILE, response_part, rm_text


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
        shutil.rmtree(out)
    tmp.rename(out)
    return meta
