"""The embedded tiny base: builds deterministically, saves/reloads as an HF folder, meets its band."""
import json

import pytest
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


def test_reflect_corpus_slips_unchecked_steps_and_checks_always_fix():
    """tiny-reflect's corpus: rare checks under the template, every re-derivation right, unchecked
    steps sometimes wrong (so re-checking is what makes a chain reliable)."""
    import re

    from r1kit.eval.evaluate import DEFAULT_REFLECTION_PHRASES
    from r1kit.eval.probes import has_correction
    from r1kit.models.tiny import corpus_documents, tiny_config

    docs = corpus_documents(tiny_config("reflect", corpus_size=3000))
    arithmetic = [d for d in docs if "Compute" in d]
    template = [d for d in arithmetic if "<think> reasoning process here </think>" in d]
    checked = [d for d in template if synthetic.CHECK_PHRASE in d]
    assert 0.02 < len(checked) / len(template) < 0.08  # rare under the R1-Zero template

    def value(expr: str) -> int:
        return eval(expr)  # the corpus writes only integers, + and -

    rechecks = wrong_steps = steps = 0
    for doc in arithmetic:
        thought = doc.rsplit("<think>", 1)[1].split("</think>")[0]
        for sentence in thought.split(". "):
            if "=" not in sentence:
                continue
            lhs, rhs = sentence.split(": ")[-1].rstrip(". ").split(" = ")
            # carried chain: the rewritten rest equals the left side when the step is right
            right = value(lhs) == value(rhs)
            if sentence.startswith(synthetic.CHECK_PHRASE):
                rechecks += 1
                assert right, sentence
            else:
                steps += 1
                wrong_steps += not right
    assert rechecks > 100 and 0.1 < wrong_steps / steps < 0.3, (rechecks, wrong_steps, steps)
    assert any(has_correction(d, DEFAULT_REFLECTION_PHRASES) for d in checked)
    assert re.search(r"\d \+ \d+ [-+] \d+ = \d+ [-+] \d+\.", "".join(arithmetic))  # the rest is carried


def test_aha_corpus_restates_the_rest_and_checks_rederive_the_operation():
    """tiny-aha's corpus: each step restates what is left; unchecked steps slip often (~30%); a check
    re-derives only the operation, always right, so checking is what makes a chain reliable; checks
    are rare under the R1-Zero template; a slipped first value followed by its fix is a correction."""
    from r1kit.eval.evaluate import DEFAULT_REFLECTION_PHRASES
    from r1kit.eval.probes import has_correction
    from r1kit.models.tiny import corpus_documents, tiny_config

    docs = corpus_documents(tiny_config("aha", corpus_size=3000))
    arithmetic = [d for d in docs if "Compute" in d]
    template = [d for d in arithmetic if "<think> reasoning process here </think>" in d]
    checked = [d for d in template if synthetic.CHECK_PHRASE in d]
    assert 0.02 < len(checked) / len(template) < 0.08  # rare under the R1-Zero template

    rechecks = wrong_steps = steps = 0
    for doc in arithmetic:
        problem = doc.rsplit("User: Compute ", 1)[1].split(". Assistant:")[0]
        thought = doc.rsplit("<think>", 1)[1].split("</think>")[0].strip()
        rest = problem
        for sentence in thought.rstrip(".").split(". "):
            if "=" not in sentence:
                continue
            rederived = sentence.startswith(synthetic.CHECK_PHRASE)
            equation, _, restated = sentence.split(": ")[-1].partition(", so ")
            lhs, value = equation.split(" = ")
            assert rest.startswith(lhs), (rest, lhs)  # the operation is read from the restated rest
            right = eval(lhs) == int(value)  # the corpus writes only integers, + and -
            if rederived:
                rechecks += 1
                assert right, sentence
            else:
                steps += 1
                wrong_steps += not right
            if restated:
                assert restated.startswith(value) and restated.endswith(rest[len(lhs):])
                rest = restated
    assert rechecks > 100 and 0.2 < wrong_steps / steps < 0.45, (rechecks, wrong_steps, steps)
    assert any(has_correction(d, DEFAULT_REFLECTION_PHRASES) for d in checked)


def test_synthetic_config_rejects_two_step_formats():
    import pytest

    with pytest.raises(ValueError, match="carry and restate"):
        synthetic.SyntheticConfig(carry=True, restate=True)


@pytest.mark.parametrize("size", ["aha2", "aha3"])
def test_aha2_corpus_plain_steps_are_right_and_place_value_appears_only_in_checks(size):
    """tiny-aha2's corpus: restated steps that never slip (a plain step's errors can only be the
    model's own); a check re-derives the operation by place value, every equation right, ending on
    the checked operation again; that form never appears outside a check; checks are rare under the
    R1-Zero template; a slipped first value followed by its re-derivation is a correction. tiny-aha3's
    checked steps also restate the rest after their first value: the same rest as after the check."""
    import re

    from r1kit.eval.evaluate import DEFAULT_REFLECTION_PHRASES
    from r1kit.eval.probes import has_correction
    from r1kit.models.tiny import corpus_documents, tiny_config

    docs = corpus_documents(tiny_config(size, corpus_size=3000))
    arithmetic = [d for d in docs if "Compute" in d]
    template = [d for d in arithmetic if "<think> reasoning process here </think>" in d]
    checked = [d for d in template if synthetic.CHECK_PHRASE in d]
    assert 0.02 < len(checked) / len(template) < 0.06  # rare under the R1-Zero template

    equation = re.compile(r"(\d+ [-+] \d+) = (-?\d+)")
    place_value = re.compile(r"\d+ [-+] \d = -?\d+, \d+ \+ \d+ = \d+, so ")
    decomposed = slipped_first = firsts = 0
    for doc in arithmetic:
        sentences = doc.rsplit("<think>", 1)[1].split("</think>")[0].strip().rstrip(".").split(". ")
        for i, sentence in enumerate(sentences):
            eqs = equation.findall(sentence)
            if sentence.startswith(synthetic.CHECK_PHRASE):
                assert all(eval(lhs) == int(v) for lhs, v in eqs), sentence  # every re-derivation right
                assert eqs[-1][0] == equation.findall(sentences[i - 1])[-1][0]  # ends on the checked operation
                decomposed += bool(place_value.search(sentence))
                continue
            assert not place_value.search(sentence)  # the place-value form appears only after the phrase
            if i + 1 < len(sentences) and sentences[i + 1].startswith(synthetic.CHECK_PHRASE):
                firsts += 1
                slipped_first += eval(eqs[0][0]) != int(eqs[0][1])
                said, _, rest = sentence.partition(", so ")
                assert bool(rest) == (size == "aha3" and i + 2 < len(sentences)), sentence  # not the last step
                if rest:  # aha3: the first value's restated rest is the re-derived value's rest
                    again = sentences[i + 1].rsplit(", so ", 1)[-1]
                    value = str(eval(eqs[0][0]))
                    assert rest.startswith(eqs[0][1]) and again.startswith(value), (sentence, again)
                    assert rest[len(eqs[0][1]):] == again[len(value):], (sentence, again)
            else:
                assert all(eval(lhs) == int(v) for lhs, v in eqs), sentence  # plain steps never slip
    assert decomposed > 100 and 0.35 < slipped_first / firsts < 0.65, (decomposed, slipped_first, firsts)
    assert any(has_correction(d, DEFAULT_REFLECTION_PHRASES) and place_value.search(d) for d in checked)


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
