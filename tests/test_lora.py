"""LoRA training (r1kit.models.lora) on the tiny base: only the adapters train, the reference is the
base (adapters off, no second copy), sampling uses the merged weights, checkpoints hold the
adapters, ``r1kit merge-lora`` writes a plain model, and --resume is exact."""
import json

import pytest
import torch

pytest.importorskip("peft")

from r1kit.config import ConfigError, load_config  # noqa: E402
from r1kit.grpo.config import ZeroConfig  # noqa: E402
from r1kit.models.logprobs import completion_logprobs  # noqa: E402
from r1kit.grpo.step import micro_batches  # noqa: E402
from r1kit.grpo.trainer import GRPOTrainer  # noqa: E402
from r1kit.models import load_model  # noqa: E402
from r1kit.models.policy import adapters_off  # noqa: E402
from r1kit.runs import is_timing_key  # noqa: E402
from helpers import ARITHMETIC

LORA = [*ARITHMETIC, "grpo.prompts_per_step=2", "grpo.group_size=4", "rollout.max_new_tokens=48", "eval.every=0",
        "log_tensorboard=false", "threads=1", "lora.r=8", "lora.alpha=16", "optim.lr=1e-2",
        "optim.warmup_steps=0", "grpo.beta=0.04"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("lora") / "run"
    trainer = GRPOTrainer(load_config(ZeroConfig, None, LORA + ["steps=2", f"out={out}"]), progress=False)
    trainer.train()
    return trainer, out


def test_only_the_adapters_train_and_sit_in_the_optimiser(trained, tiny):
    trainer, _ = trained
    base = dict(tiny[0].named_parameters())
    optimised = {id(p) for g in trainer.models.optimizer.param_groups for p in g["params"]}
    changed_adapters = 0
    for name, p in trainer.policy.named_parameters():
        if "lora_" in name:
            assert p.requires_grad and id(p) in optimised, name
            changed_adapters += "lora_B" in name and bool(p.abs().sum() > 0)  # B starts at zero
        else:
            plain = name.removeprefix("base_model.model.").replace(".base_layer", "")
            assert not p.requires_grad and id(p) not in optimised, name
            assert torch.equal(p, base[plain]), f"{name} changed"
    assert changed_adapters > 0
    assert trainer.reference is trainer.policy  # beta > 0 without a second copy


def _batch(trainer):
    groups = trainer.source.collect(trainer.step).train
    return micro_batches(groups, trainer.tokenizer.pad_token_id, 10_000, False)[0].batch


@torch.no_grad()
def test_reference_logprobs_are_the_base_models_and_sampling_uses_the_merged_adapters(trained, tiny):
    trainer, _ = trained
    batch = _batch(trainer)
    with adapters_off(trainer.policy):
        ref, _ = completion_logprobs(trainer.policy, batch)
    base, _ = completion_logprobs(tiny[0], batch)
    adapted, _ = completion_logprobs(trainer.policy, batch)
    merged, _ = completion_logprobs(trainer.sampler.model, batch)
    mask = batch.completion_mask.bool()
    assert torch.allclose(ref[mask], base[mask], atol=1e-6)
    assert (adapted[mask] - base[mask]).abs().max() > 1e-3  # the adapters do change the policy
    assert torch.allclose(merged[mask], adapted[mask], atol=1e-4)


def test_checkpoints_hold_the_adapters_and_merge_lora_writes_a_plain_model(trained, tmp_path):
    from r1kit.cli import main

    trainer, out = trained
    ckpt = out / "checkpoint-2"
    assert (ckpt / "adapter_model.safetensors").exists() and not (ckpt / "model.safetensors").exists()
    assert main(["merge-lora", str(out), "--out", str(tmp_path / "merged")]) == 0
    assert (tmp_path / "merged" / "model.safetensors").exists()
    assert main(["merge-lora", str(out), "--out", str(tmp_path / "merged")]) == 2  # not empty
    batch = _batch(trainer)
    with torch.no_grad():
        want, _ = completion_logprobs(trainer.policy, batch)
        for model in (load_model(str(tmp_path / "merged")), load_model(str(ckpt))):
            got, _ = completion_logprobs(model, batch)
            mask = batch.completion_mask.bool()
            assert torch.allclose(got[mask], want[mask], atol=1e-4)


def test_lora_resume_is_exact(tmp_path):
    def rows(run):
        return [{k: v for k, v in json.loads(line).items() if not is_timing_key(k)}
                for line in (run / "metrics.jsonl").read_text().splitlines()]

    straight, split = tmp_path / "straight", tmp_path / "split"
    GRPOTrainer(load_config(ZeroConfig, None, LORA + ["steps=2", "lora.dropout=0.1", f"out={straight}"]),
                progress=False).train()
    GRPOTrainer(load_config(ZeroConfig, None, LORA + ["steps=1", "lora.dropout=0.1", f"out={split}"]),
                progress=False).train()
    GRPOTrainer(load_config(ZeroConfig, None, LORA + ["steps=2", "lora.dropout=0.1", f"out={split}"]),
                resume=True, progress=False).train()
    assert rows(split) == rows(straight)


def test_lora_config_errors():
    with pytest.raises(ConfigError, match="lora.dropout"):
        load_config(ZeroConfig, None, ["lora.r=8", "lora.dropout=1.5"])
    with pytest.raises(ConfigError, match="lora.target_modules"):
        load_config(ZeroConfig, None, ["lora.r=8", "lora.target_modules=[]"])


def test_sft_with_lora_saves_adapters_in_checkpoints_and_a_merged_final(tmp_path):
    from r1kit.sft import run_sft
    from r1kit.sft.config import SFTConfig

    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"prompt": f"{i} + 1 =", "completion": f" {i + 1}"}) + "\n" for i in range(8)))
    cfg = load_config(SFTConfig, None, [f"data={rows}", "epochs=2", "batch_size=4", "threads=1", "lora.r=4",
                                        "lr=1e-2", "warmup_steps=0", f"out={tmp_path / 'run'}"])
    summary = run_sft(cfg, progress=False)
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert metrics[-1]["loss"] < metrics[0]["loss"]
    assert (tmp_path / "run" / f"checkpoint-{summary['steps']}" / "adapter_config.json").exists()
    assert (tmp_path / "run" / "final" / "config.json").exists()
    assert not (tmp_path / "run" / "final" / "adapter_config.json").exists()
