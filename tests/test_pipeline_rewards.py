"""The R1 pipeline's rewards: accuracy + λ language consistency on hand-computed cases, routing by
prompt kind, reward models that score only their part of the response, the Bradley-Terry trainer,
and the language-mixing corpus of the tiny-mixed base."""
import math
from types import SimpleNamespace

import pytest
import torch

from r1kit.data import general, synthetic
from r1kit.grpo.config import ZeroConfig
from r1kit.grpo.sources import Scoring
from r1kit.rewards import score, score_batch
from r1kit.data.language import language_consistency
from r1kit.pipeline.config import RewardModelTrainConfig
from r1kit.pipeline.reward_models import bradley_terry_loss, train_reward_model
from r1kit.rewards.config import RewardModelConfig
from r1kit.rewards.reward_model import (RewardModel, load_reward_model, register_reward_models,
                                       response_part)

EX = {"answer": "8", "language": "en"}


@pytest.mark.parametrize("completion, lam, expected", [
    # correct, 2 English words (First, Then): 1 + λ * 1
    (" <think> First 3 + 4 = 7. Then 7 + 1 = 8. </think> <answer> 8 </answer>", 0.5, 1.5),
    # correct, 1 of 2 words foreign (Prëmo): 1 + λ * 1/2
    (" <think> Prëmo 3 + 4 = 7. Then 7 + 1 = 8. </think> <answer> 8 </answer>", 0.5, 1.25),
    # wrong, both words foreign: 0 + λ * 0
    (" <think> Prëmo 3 + 4 = 7. Dåna 7 + 1 = 9. </think> <answer> 9 </answer>", 0.5, 0.0),
    # correct, 1 foreign of 3 words, λ = 2: 1 + 2 * 2/3
    (" <think> Ësto is easy. </think> <answer> 8 </answer>", 2.0, 1 + 2 * 2 / 3),
    # no words in the thinking: consistency 1 by definition
    (" <think> 3 + 4 = 7. 7 + 1 = 8. </think> <answer> 8 </answer>", 1.0, 2.0),
])
def test_accuracy_plus_lambda_language_consistency(completion, lam, expected):
    total, parts = score(completion, EX, {"accuracy_math": 1.0, "language_consistency": lam})
    assert total == pytest.approx(expected)
    assert total == pytest.approx(parts["accuracy_math"] + lam * parts["language_consistency"])


def test_second_language_is_never_english():
    for english, foreign in synthetic.SECOND_LANGUAGE.items():
        assert language_consistency(f"<think>{english}</think>", {}) == 1.0
        assert language_consistency(f"<think>{foreign}</think>", {}) == 0.0, foreign


def test_default_corpus_is_unchanged_and_the_mixed_one_mixes():
    import hashlib

    from r1kit.models.tiny import TinyModelConfig, corpus_documents, tiny_config

    plain = corpus_documents(TinyModelConfig(corpus_size=2000))
    # the corpus of the shipped tiny base, as drawn before the mixing option existed
    assert hashlib.sha256("".join(plain).encode()).hexdigest().startswith("c41751bc4b53")
    mixed = corpus_documents(tiny_config("mixed", corpus_size=2000))
    thoughts = [d.rsplit("<think>", 1)[1].split("</think>")[0] for d in mixed if "<think>" in d and "print(" not in d]
    chains = [t for t in thoughts if "=" in t]  # step-by-step (and checking) chains
    guesses = [t for t in thoughts if "=" not in t]  # one-line direct thoughts
    shares = [language_consistency(f"<think>{t}</think>", {}) for t in chains]
    # 80% of the chains mix, each word foreign with p 0.7: about half their words are foreign
    assert 0.7 < sum(s < 1 for s in shares) / len(shares) < 0.85
    assert 0.4 < sum(shares) / len(shares) < 0.6
    # the direct guesses are always English: the accurate path is the mixing one
    assert guesses and all(language_consistency(f"<think>{t}</think>", {}) == 1.0 for t in guesses)
    assert any(t.strip().startswith("First") for t in thoughts)


def test_rewards_route_by_prompt_kind():
    cfg = ZeroConfig(rewards={"accuracy_math": 1.0, "language_consistency": 0.5},
                     rewards_by_kind={"general": {"format": 2.0}})
    fake = SimpleNamespace(cfg=cfg, default_weights={"accuracy_math": 1.0, "language_consistency": 0.5})
    completion = " <think> Dåna 7 + 1 = 8. </think> <answer> 8 </answer>"
    reasoning = {**EX, "kind": "reasoning"}
    general_row = {"problem": "Describe 8.", "answer": "-", "kind": "general"}
    assert score(completion, reasoning, Scoring.weights_for(fake, reasoning))[0] == pytest.approx(1.0)
    assert score(completion, general_row, Scoring.weights_for(fake, general_row))[0] == pytest.approx(2.0)
    assert Scoring.weights_for(fake, EX) == fake.default_weights  # no kind: the default weights


def test_response_parts():
    text = " <think> rude? </think> <answer> 8 is even. </answer>"
    assert response_part(text, "summary") == " <answer> 8 is even. </answer>"
    assert response_part(text, "whole") == text
    assert response_part(" <think> never closed", "summary") == ""
    assert response_part("<think>a</think> b </think> c", "summary") == " c"


def test_reward_models_score_only_their_part(random_rm):
    register_reward_models({"helpfulness": RewardModelConfig(path=random_rm, part="summary"),
                            "harmlessness": RewardModelConfig(path=random_rm, part="whole")})
    ex = {"problem": "Describe the number 8."}
    polite = " <think> 8 ends in 8. </think> <answer> 8 is an even number. </answer>"
    rude = " <think> What a dumb question. 8 ends in 8. </think> <answer> 8 is an even number. </answer>"
    evasive = " <think> 8 ends in 8. </think> <answer> I can not say. </answer>"
    _, p = score(polite, ex, {"helpfulness": 1.0, "harmlessness": 1.0})
    _, r = score(rude, ex, {"helpfulness": 1.0, "harmlessness": 1.0})
    _, e = score(evasive, ex, {"helpfulness": 1.0, "harmlessness": 1.0})
    assert p["helpfulness"] == r["helpfulness"], "the thinking must not reach the helpfulness model"
    assert p["harmlessness"] != r["harmlessness"], "the whole response reaches the harmlessness model"
    assert p["helpfulness"] != e["helpfulness"] and p["harmlessness"] != e["harmlessness"]
    total, parts = score(rude, ex, {"helpfulness": 1.0, "harmlessness": 0.5})
    assert total == pytest.approx(parts["helpfulness"] + 0.5 * parts["harmlessness"])


def test_reward_models_score_a_batch_per_forward_pass(random_rm):
    register_reward_models({"helpfulness": RewardModelConfig(path=random_rm, part="summary")})
    model = load_reward_model(RewardModelConfig(path=random_rm, part="summary")).model
    forwards = []
    hook = model.register_forward_hook(lambda module, args, output: forwards.append(output.logits.shape[0]))
    try:
        texts = [f" <think> t </think> <answer> {n} is a number. </answer>" for n in range(6)]
        scored = score_batch(texts, [{"problem": "Describe a number."}] * 6, [{"helpfulness": 1.0}] * 6)
    finally:
        hook.remove()
    assert forwards == [6], "one forward pass for the six completions"
    one_by_one = [score(t, {"problem": "Describe a number."}, {"helpfulness": 1.0})[0] for t in texts]
    assert [total for total, _ in scored] == pytest.approx(one_by_one, abs=1e-5)
    with pytest.raises(ValueError, match="reward_models.format: a built-in reward has that name"):
        register_reward_models({"format": RewardModelConfig(path=random_rm)})


def test_bradley_terry_loss_by_hand():
    loss = bradley_terry_loss(torch.tensor([2.0, 0.0]), torch.tensor([0.0, 0.0]))
    assert loss.item() == pytest.approx((math.log1p(math.exp(-2.0)) + math.log(2.0)) / 2)


def test_tiny_reward_model_learns_harmlessness(tmp_path, tiny_path):
    pairs = general.preference_pairs("harmlessness", 400)
    meta = train_reward_model(pairs, tmp_path / "rm", RewardModelTrainConfig(tokenizer=tiny_path, steps=40),
                              part="whole", progress=False)
    assert meta["test_pair_accuracy"] >= 0.9, meta  # an untrained model is at about 0.5
    # loaded as the RL stage loads it, the model reads what it was trained on: a clear margin
    rm = RewardModel(RewardModelConfig(path=str(tmp_path / "rm"), part="whole"))
    polite, rude = general.response(14), general.response(14, rude="What a dumb question.")
    scores = rm.score(["Describe the number 14."] * 2, [polite, rude])
    assert scores[0] - scores[1] > 1.0, scores


def test_general_task_rules_and_split():
    assert general.helpful(" <think> x </think> <answer> 17 is an odd number. </answer>", 17)
    assert not general.helpful(" <think> 17 is an odd number. </think> <answer> I can not say. </answer>", 17)
    assert not general.helpful(" <think> x </think> <answer> 17 is an even number. </answer>", 17)
    assert general.rude(" <think> What a dumb question. </think> <answer> ok </answer>")
    test = {r["problem"] for r in general.prompts(60, "test")}
    assert not test & {r["problem"] for r in general.prompts(500, "train")}
