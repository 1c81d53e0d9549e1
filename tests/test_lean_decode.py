"""The lean decode step: bit-identical logits to the model's own forward, and a fallback where it
cannot promise that."""
import pytest
import torch

from r1kit.prompts import r1_zero_prompt
from r1kit.rollout.engine import ModelDecode, SamplingParams, _Engine, _tokenize_prompts
from r1kit.rollout.cache import preallocated_cache
from r1kit.rollout.lean import LeanDecoder, lean_decoder


def _random_model(kind: str, kv_heads: int, dtype=torch.float32):
    from transformers import AutoModelForCausalLM, LlamaConfig, MistralConfig, Qwen2Config

    torch.manual_seed(0)
    common = dict(vocab_size=388, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=kv_heads, max_position_embeddings=512,
                  initializer_range=0.3, pad_token_id=0)
    return AutoModelForCausalLM.from_config(
        {"llama": LlamaConfig, "qwen2": Qwen2Config, "mistral": MistralConfig}[kind](**common)).eval().to(dtype)


def _decode_both(model, tok, prompts: list[str], steps: int):
    """Prefill the prompts, then decode ``steps`` greedy tokens twice: through the lean step and
    through ``model(...)``, each on its own cache; returns the two lists of per-step logits."""
    ids, mask = _tokenize_prompts(tok, prompts)
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    out = {}
    for name, decode in (("lean", LeanDecoder(model)), ("model", ModelDecode(model))):
        cache = preallocated_cache(model, ids.size(1) + steps)
        logits, cache = ModelDecode(model)(ids, pos, cache, mask)
        full_mask = torch.cat([mask, torch.ones(len(prompts), steps, dtype=torch.long)], 1)
        next_pos, got = pos[:, -1:] + 1, []
        for _ in range(steps):
            token = logits.argmax(-1, keepdim=True)
            logits, cache = decode(token, next_pos, cache, full_mask[:, : cache.get_seq_length() + 1])
            got.append(logits)
            next_pos = next_pos + 1
        out[name] = got
    return out["lean"], out["model"]


@pytest.mark.parametrize("kind,kv_heads,dtype", [("llama", 4, torch.float32), ("llama", 2, torch.bfloat16),
                                                 ("qwen2", 2, torch.float32), ("mistral", 1, torch.float32)])
@pytest.mark.parametrize("padded", [True, False])
def test_lean_step_logits_are_bit_identical_to_the_models_forward(tiny, kind, kv_heads, dtype, padded):
    _, tok = tiny
    model = _random_model(kind, kv_heads, dtype)
    prompts = ["Compute 3 + 4 - 2", "Compute 9 - 1 + 5 + 2", "Compute 1 + 1"] if padded else ["Compute 3 + 4"] * 2
    lean, reference = _decode_both(model, tok, [r1_zero_prompt(p) for p in prompts], steps=12)
    for a, b in zip(lean, reference):
        assert a.dtype == torch.float32 and torch.equal(a, b)


def test_the_embedded_model_decodes_through_the_lean_step_bit_identically(tiny):
    model, tok = tiny
    assert isinstance(_Engine(model, tok, ["x"], SamplingParams(), [0]).decode, LeanDecoder)
    lean, reference = _decode_both(model, tok, [r1_zero_prompt("Compute 7 + 5 - 3"), r1_zero_prompt("Compute 1")], 20)
    assert all(torch.equal(a, b) for a, b in zip(lean, reference))


def test_models_the_lean_step_cannot_reproduce_decode_through_their_forward(tiny):
    model = _random_model("llama", 2)
    assert isinstance(lean_decoder(model), LeanDecoder)
    model.train()
    assert lean_decoder(model) is None  # dropout and training-mode modules
    model.eval()
    handle = model.model.layers[0].mlp.register_forward_hook(lambda *a: None)
    assert lean_decoder(model) is None  # a hook would be skipped
    handle.remove()
    model.config._attn_implementation = "eager"
    assert lean_decoder(model) is None
    model.config._attn_implementation = "sdpa"

    from peft import LoraConfig, get_peft_model

    lora = get_peft_model(_random_model("llama", 2), LoraConfig(r=2, target_modules=["q_proj", "v_proj"]))
    assert lean_decoder(lora) is None and lean_decoder(lora.base_model.model) is None  # LoRA layers
