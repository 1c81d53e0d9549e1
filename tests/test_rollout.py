"""The rollout sampler: greedy equals HF generate; sampled log-probs equal a teacher-forced pass."""
import pytest
import torch

from r1kit.prompts import r1_zero_prompt
from r1kit.rollout import SamplingParams, sample
from r1kit.rollout.draw import filter_logits, nucleus

PROBLEMS = ["Compute 3 + 4 - 2", "Compute 9 - 1 + 5 + 2", "Compute 1 + 1"]


def test_greedy_matches_hf_generate(tiny):
    model, tok = tiny
    prompts = [r1_zero_prompt(p) for p in PROBLEMS]
    ours = sample(model, tok, prompts, SamplingParams(temperature=0, max_new_tokens=48))
    for prompt, r in zip(prompts, ours):
        enc = tok(prompt, return_tensors="pt", add_special_tokens=False)
        ref = model.generate(**enc, do_sample=False, max_new_tokens=48, pad_token_id=tok.eos_token_id)
        assert r.token_ids == ref[0, enc["input_ids"].shape[1]:].tolist()


def test_sampled_logprobs_match_teacher_forcing(tiny):
    model, tok = tiny
    prompts = [r1_zero_prompt(p) for p in PROBLEMS]
    rollouts = sample(model, tok, prompts, SamplingParams(n=3, temperature=0.8, max_new_tokens=40, seed=1))
    assert len(rollouts) == 9 and [r.prompt_index for r in rollouts] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    for r in rollouts:
        prompt_ids = tok(prompts[r.prompt_index], add_special_tokens=False)["input_ids"]
        ids = torch.tensor([prompt_ids + r.token_ids])
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0, len(prompt_ids) - 1:-1].float() / 0.8
        expected = logits.log_softmax(-1).gather(-1, torch.tensor(r.token_ids)[:, None]).squeeze(-1)
        assert torch.allclose(torch.tensor(r.logprobs), expected, atol=1e-4)
        assert r.finish_reason in ("eos", "length")


def test_sampling_is_reproducible_for_a_seed(tiny):
    model, tok = tiny
    prompts = [r1_zero_prompt(p) for p in PROBLEMS]
    a = sample(model, tok, prompts, SamplingParams(n=2, temperature=1.0, max_new_tokens=30, seed=7))
    b = sample(model, tok, prompts, SamplingParams(n=2, temperature=1.0, max_new_tokens=30, seed=7))
    assert [r.token_ids for r in a] == [r.token_ids for r in b]


def test_stop_strings_and_length_cap(tiny):
    model, tok = tiny
    rs = sample(model, tok, [r1_zero_prompt(PROBLEMS[0])], SamplingParams(temperature=0, max_new_tokens=64, stop=["</think>"]))
    assert rs[0].finish_reason == "stop" and rs[0].text.rstrip().endswith("</think>")
    rs = sample(model, tok, [r1_zero_prompt(PROBLEMS[0])], SamplingParams(temperature=0, max_new_tokens=3))
    assert rs[0].finish_reason == "length" and rs[0].truncated and len(rs[0].token_ids) == 3


def test_filter_logits_top_p_and_top_k():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    kept = torch.isfinite(filter_logits(logits, top_p=0.7, top_k=0))
    assert kept.tolist() == [[True, True, False, False]]  # 0.5 < 0.7, 0.5 + 0.3 reaches it
    kept = torch.isfinite(filter_logits(logits, top_p=1.0, top_k=3))
    assert kept.tolist() == [[True, True, True, False]]
    kept = torch.isfinite(filter_logits(logits, top_p=0.1, top_k=0))
    assert kept.tolist() == [[True, False, False, False]]  # the top token always stays


def _random_model(kind: str):
    """A randomly initialised decoder (peaked logits so that greedy ties cannot happen)."""
    from transformers import AutoModelForCausalLM, LlamaConfig, MistralConfig, Qwen2Config

    torch.manual_seed(0)
    common = dict(vocab_size=388, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                  initializer_range=0.3, pad_token_id=0)
    cfg = {"llama": LlamaConfig, "qwen2": Qwen2Config, "mistral": MistralConfig}[kind](**common)
    if kind == "mistral":
        cfg.sliding_window = 4096  # not a plain full-attention cache: the sampler falls back to HF's
    return AutoModelForCausalLM.from_config(cfg).eval()


@pytest.mark.parametrize("kind", ["llama", "qwen2", "mistral"])
def test_random_decoders_greedy_equals_hf_generate_and_logprobs_equal_teacher_forcing(tiny, kind):
    from r1kit.rollout.cache import supports_preallocated_cache

    _, tok = tiny  # its ids all fit the random model's vocabulary
    model = _random_model(kind)
    model.generation_config.eos_token_id = tok.eos_token_id
    assert supports_preallocated_cache(model) == (kind != "mistral")
    prompts = [r1_zero_prompt(p) for p in PROBLEMS]
    ours = sample(model, tok, prompts, SamplingParams(temperature=0, max_new_tokens=40))
    for prompt, r in zip(prompts, ours):
        enc = tok(prompt, return_tensors="pt", add_special_tokens=False)
        ref = model.generate(**enc, do_sample=False, max_new_tokens=40, pad_token_id=tok.eos_token_id)
        assert r.token_ids == ref[0, enc["input_ids"].shape[1]:].tolist()
    rollouts = sample(model, tok, prompts, SamplingParams(n=4, temperature=1.0, max_new_tokens=30, seed=3))
    for r in rollouts:
        prompt_ids = tok(prompts[r.prompt_index], add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([prompt_ids + r.token_ids])).logits[0, len(prompt_ids) - 1:-1]
        expected = logits.float().log_softmax(-1).gather(-1, torch.tensor(r.token_ids)[:, None]).squeeze(-1)
        assert torch.allclose(torch.tensor(r.logprobs), expected, atol=1e-4)


def test_rows_finishing_at_different_steps_keep_their_own_tokens(tiny):
    """Batch compaction must not mix rows up: every completion equals its prompt sampled alone."""
    _, tok = tiny
    model = _random_model("llama")
    prompts = [r1_zero_prompt(p) for p in PROBLEMS + ["Compute 8 - 3", "Compute 2 + 2 + 2", "Compute 7"]]
    params = SamplingParams(temperature=0, max_new_tokens=40, stop=["a"])
    together = sample(model, tok, prompts, params, compact_fraction=0.01)
    assert len({len(r.token_ids) for r in together}) > 2  # they do end at different steps
    assert {r.finish_reason for r in together} >= {"stop"}
    for r in together:
        alone = sample(model, tok, [prompts[r.prompt_index]], params)[0]
        assert (r.token_ids, r.finish_reason, r.text) == (alone.token_ids, alone.finish_reason, alone.text)


def _nucleus_by_full_sort(logits, top_p):
    sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
    probs = sorted_logits.softmax(-1)
    return torch.zeros_like(logits, dtype=torch.bool).scatter(-1, order, probs.cumsum(-1) - probs < top_p)


@pytest.mark.parametrize("candidates", [1, 8, 64, 512])
def test_nucleus_from_candidates_equals_the_full_sort(candidates):
    """Rows whose nucleus fits in the candidates and rows that need the full sort, side by side."""
    gen = torch.Generator().manual_seed(0)
    scales = torch.tensor([0.5, 2.0, 8.0, 30.0]).repeat_interleave(8)[:, None]  # flat ... peaked rows
    logits = torch.randn(32, 5000, generator=gen) * scales
    for top_p in (0.3, 0.9, 0.95, 0.999):
        ours = nucleus(logits, top_p, candidates=candidates)
        assert torch.equal(ours, _nucleus_by_full_sort(logits, top_p)), top_p
        assert ours.any(-1).all()  # the top token always stays


@pytest.mark.parametrize("kind,n,batch_size,compact,max_new,seed,top_p", [
    ("llama", 2, 4, 0.125, 30, 0, 0.95), ("llama", 1, 4, 0.6, 6, 1, 1.0), ("mistral", 2, 4, 0.125, 30, 0, 0.95)])
def test_continuous_batching_rows_do_not_depend_on_their_batch(tiny, kind, n, batch_size, compact, max_new, seed, top_p):
    """With a batch smaller than the work, finished rows are replaced by pending prompts (spliced
    into the cache; waves for the sliding-window fallback); every row samples what it samples alone.
    The second case leaves rows that hit the length cap in the batch while later ones go on."""
    _, tok = tiny
    model = _random_model(kind)
    prompts = [r1_zero_prompt(p) for p in PROBLEMS + ["Compute 8 - 3", "Compute 2 + 2 + 2", "Compute 7", "Compute 6 + 1"]]
    seeds = [101 * i + 5 + 1000 * seed for i in range(len(prompts))]
    params = SamplingParams(n=n, temperature=1.0, top_p=top_p, max_new_tokens=max_new, stop=["a"])
    finished = []
    together = sample(model, tok, prompts, params, compact_fraction=compact, batch_size=batch_size,
                      prompt_seeds=seeds, progress=finished.append)
    assert sum(finished) == len(together) == n * len(prompts)
    assert len({len(r.token_ids) for r in together}) > 2  # rows end at different steps, slots get reused
    for i, prompt in enumerate(prompts):
        alone = sample(model, tok, [prompt], params, prompt_seeds=[seeds[i]])
        for a, b in zip(together[n * i: n * (i + 1)], alone):
            assert (a.token_ids, a.finish_reason, a.text) == (b.token_ids, b.finish_reason, b.text)
            assert torch.allclose(torch.tensor(a.logprobs), torch.tensor(b.logprobs), atol=1e-5)


@pytest.mark.parametrize("top_p,top_k,candidates,vocab", [(1.0, 0, 512, 40), (1.0, 0, 512, 700), (0.8, 0, 3, 40),
                                                           (0.8, 0, 512, 40), (1.0, 5, 512, 40), (0.7, 6, 512, 40)])
def test_inverse_cdf_draw_has_the_multinomial_distribution(top_p, top_k, candidates, vocab):
    """Chi-square test of 400k draws against softmax(filter_logits(z)); a small candidate set forces
    the full-sort path, a vocabulary of 700 several blocks (one partial). Threshold: p = 1e-6 (a
    false alarm once in a million runs)."""
    from scipy.stats import chi2

    from r1kit.rollout.draw import draw

    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(1, vocab, generator=gen) * 2
    expected = filter_logits(logits / 0.7, top_p, top_k).softmax(-1)[0].double()
    draws = 400_000
    u = torch.rand(draws, dtype=torch.float64, generator=gen)
    chosen, logp = draw(logits.expand(draws, -1), u, 0.7, top_p, top_k, candidates=candidates)
    counts = torch.bincount(chosen, minlength=vocab).double()
    assert counts[expected == 0].sum() == 0  # nothing outside the nucleus / top-k
    live = expected > 0
    if vocab > 100:  # pool the rare tokens so that every cell expects >= 20 draws
        rare = live & (draws * expected < 20)
        counts = torch.cat([counts[live & ~rare], counts[rare].sum()[None]])
        expected = torch.cat([expected[live & ~rare], expected[rare].sum()[None]])
        live = expected > 0
    stat = ((counts[live] - draws * expected[live]) ** 2 / (draws * expected[live])).sum().item()
    assert stat < chi2.ppf(1 - 1e-6, int(live.sum()) - 1), stat
    assert torch.allclose(logp, (logits / 0.7).log_softmax(-1)[0][chosen], atol=1e-6)
