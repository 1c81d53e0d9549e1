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


def test_calc_corpus_calls_rarely_under_the_template_and_copies_the_value():
    """tiny-calc's corpus: calculator problems only; answers call the calculator in ~4% of the
    R1-Zero-template documents and ~50% of the short ones, the call is the problem's expression, the
    observation the calculator's own and the answer its value copied; the calculator's tags are whole
    tokens, so a model turn ends on ``</calc>`` itself and the observation's ids are the corpus's."""
    import re

    from r1kit.environments import make_environment
    from r1kit.models.tiny import CALC_TOKENS, corpus_documents, tiny_config, train_tokenizer

    docs = corpus_documents(tiny_config("calc", corpus_size=4000))
    assert len(docs) == 4000 and all("User: Compute " in d for d in docs)
    template = [d for d in docs if "<think> reasoning process here </think>" in d]
    short = [d for d in docs if d.startswith("User: ")]
    assert len(template) + len(short) == 4000 and 0.35 < len(template) / 4000 < 0.45
    assert 0.02 < sum("<calc>" in d for d in template) / len(template) < 0.06
    assert 0.45 < sum("<calc>" in d for d in short) / len(short) < 0.55
    env = make_environment("calculator")
    call = re.compile(r"Compute (.+)\. Assistant: <think> <calc>(.+)</calc>(<output>.+</output>) </think> "
                      r"<answer> (\d+) </answer>$")
    for doc in (d for d in docs if "<calc>" in d):
        expr, called, observation, answer = call.search(doc).groups()
        assert called == expr and observation == env.step(f"<calc>{expr}</calc>", {}).text
        assert observation == f"<output> {answer} </output>"
    tokenizer = train_tokenizer(docs, 384, CALC_TOKENS)
    ids = tokenizer("</calc><output> 41104 </output>", add_special_tokens=False)["input_ids"]
    assert tokenizer.convert_ids_to_tokens(ids[:2]) == ["</calc>", "<output>"]
    assert ids[1:] == tokenizer(env.observe("41104").text, add_special_tokens=False)["input_ids"]


def test_init_from_a_size_equals_building_it_then_continuing_from_its_folder(tmp_path, monkeypatch):
    """``init_from`` naming a size (``calc`` from ``calc-pre``) pre-trains that size first in memory:
    the same weights as building it into a folder and continuing from that folder (how the shipped
    tiny-calc was made)."""
    from dataclasses import asdict

    from safetensors.torch import load_file

    from r1kit.models.tiny import TINY_SIZES, tiny_config

    first = {k: v for k, v in asdict(_small()).items() if k != "seed"}
    first.update(calc_fraction=1.0, template_fraction=0.4, block_size=64)
    monkeypatch.setitem(TINY_SIZES, "calc-test-pre", first)
    monkeypatch.setitem(TINY_SIZES, "calc-test", {**first, "init_from": "calc-test-pre", "lr": 2e-3})
    build_tiny_base(tmp_path / "pre", tiny_config("calc-test-pre"), log=lambda *_: None)
    build_tiny_base(tmp_path / "two", tiny_config("calc-test", init_from=str(tmp_path / "pre")), log=lambda *_: None)
    build_tiny_base(tmp_path / "one", tiny_config("calc-test"), log=lambda *_: None)
    two, one = (load_file(tmp_path / d / "model.safetensors") for d in ("two", "one"))
    assert two.keys() == one.keys() and all(torch.equal(two[k], one[k]) for k in two)
    assert (tmp_path / "two" / "tokenizer.json").read_text() == (tmp_path / "one" / "tokenizer.json").read_text()


def test_countdown_size_is_the_shipped_base_and_its_corpus_is_the_countdown_corpus():
    """``r1kit base --size countdown`` builds tiny-countdown: the shipped folder records that size's
    config, and its corpus is r1kit.data.countdown's (drills and rare checked searches), not arithmetic."""
    import json
    from dataclasses import asdict

    from pathlib import Path

    from r1kit.models import resolve_model_path
    from r1kit.models.tiny import corpus_documents, tiny_config

    meta = json.loads((Path(resolve_model_path("tiny-countdown")) / "r1kit_base.json").read_text())
    assert meta["config"] == json.loads(json.dumps(asdict(tiny_config("countdown"))))
    docs = corpus_documents(tiny_config("countdown", corpus_size=2000))
    assert len(docs) == 2000 and not any("Compute" in d for d in docs)
    assert sum("reach" in d for d in docs) == 1400 and sum(" vs " in d or "evaluate" in d for d in docs) == 600
