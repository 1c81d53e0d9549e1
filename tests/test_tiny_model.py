"""The embedded tiny base: builds deterministically, saves/reloads as an HF folder, meets its band."""
import json

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from r1kit.data import synthetic
from r1kit.eval.evaluate import EvalConfig, evaluate
from r1kit.models.tiny import TinyModelConfig, build_tiny_base
from r1kit.prompts import r1_zero_prompt


def _small(seed=0):
    return TinyModelConfig(corpus_size=600, steps=6, batch_size=4, hidden_size=32, num_layers=1,
                           num_heads=2, intermediate_size=64, vocab_size=300, seed=seed)


def test_build_save_reload_generate_deterministic(tmp_path):
    a = build_tiny_base(tmp_path / "a", _small())
    b = build_tiny_base(tmp_path / "b", _small())
    for name in ("config.json", "model.safetensors", "tokenizer.json", "r1kit_base.json"):
        assert (a / name).exists()
    ma, mb = AutoModelForCausalLM.from_pretrained(a), AutoModelForCausalLM.from_pretrained(b)
    for (na, pa), (_, pb) in zip(ma.state_dict().items(), mb.state_dict().items()):
        assert torch.equal(pa, pb), f"{na} differs between two builds with the same seed"
    c = AutoModelForCausalLM.from_pretrained(build_tiny_base(tmp_path / "c", _small(seed=1)))
    assert not torch.equal(ma.model.embed_tokens.weight, c.model.embed_tokens.weight)
    tok = AutoTokenizer.from_pretrained(a)
    enc = tok(r1_zero_prompt("Compute 1 + 2"), return_tensors="pt")
    out = ma.generate(**enc, max_new_tokens=5, do_sample=False, pad_token_id=tok.eos_token_id)
    assert out.shape[1] == enc["input_ids"].shape[1] + 5 or out[0, -1] == tok.eos_token_id


def test_tokenizer_round_trip_and_chat_template(tiny):
    _, tok = tiny
    text = r1_zero_prompt("Compute 12 - 3 + 4") + " <think> 12 - 3 = 9. 9 + 4 = 13. </think> <answer> 13 </answer>"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == text
    for tag in ("<think>", "</think>", "<answer>", "</answer>"):
        assert len(tok(tag, add_special_tokens=False)["input_ids"]) == 1
    chat = tok.apply_chat_template([{"role": "user", "content": "Compute 1 + 1"}], tokenize=False,
                                   add_generation_prompt=True)
    assert chat.endswith("Assistant:") and "User: Compute 1 + 1" in chat


def test_shipped_base_meets_its_band(tiny, tiny_path):
    """A *base* model: the R1-Zero format often, pass@1 on the held-out set in [10%, 60%]."""
    model, tok = tiny
    meta = json.loads(open(f"{tiny_path}/r1kit_base.json").read())
    assert meta["parameters"] < 10_000_000
    problems = synthetic.test_set(100)
    _, res = evaluate(model, tok, problems, EvalConfig(k=4, max_new_tokens=128), progress=False)
    assert 0.10 <= res["pass@1"] <= 0.60, res
    assert res["format_rate"] >= 0.8, res
    assert res["cons@4"] >= res["pass@1"] - 0.05


def test_held_out_set_is_disjoint_from_training():
    test = {e["problem"] for e in synthetic.test_set(1000)}
    train = {e["problem"] for e in synthetic.train_set(20000)}
    assert not test & train
    assert len(synthetic.test_set(200)) == 200
