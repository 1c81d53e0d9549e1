"""Training-side log-probs: shared-prompt, chunked-vocabulary forward equals the plain one."""
import random

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from r1kit.models.logprobs import completion_logprobs, linear_logprobs, make_group_batch, split_by_tokens


def _random_llama(seed=0):
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=97, hidden_size=48, intermediate_size=96, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                      pad_token_id=0, eos_token_id=1, bos_token_id=1)
    return LlamaForCausalLM(cfg).eval()


def _plain_logprobs(model, prompt, completion, temperature):
    ids = torch.tensor([prompt + completion])
    logits = model(input_ids=ids).logits[0, len(prompt) - 1: -1].float() / temperature
    return logits.log_softmax(-1).gather(-1, torch.tensor(completion)[:, None]).squeeze(-1)


@pytest.mark.parametrize("which", ["tiny", "random_llama"])
def test_shared_prompt_logprobs_and_grads_equal_plain_forward(tiny, which):
    model = tiny[0] if which == "tiny" else _random_llama()
    vocab = model.config.vocab_size
    rng = random.Random(0)
    prompts = [[rng.randrange(2, vocab) for _ in range(n)] for n in (7, 12, 9)]
    completions = [[rng.randrange(2, vocab) for _ in range(rng.randint(1, 10))] for _ in range(6)]
    batch = make_group_batch(prompts, completions, group_size=2, pad_id=0)
    weights = torch.randn(batch.completion_ids.shape)

    model.zero_grad()
    logp, entropy = completion_logprobs(model, batch, temperature=0.7)
    (logp * weights).sum().backward()
    ours = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    total = 0.0
    for i, c in enumerate(completions):
        plain = _plain_logprobs(model, prompts[i // 2], c, 0.7)
        assert torch.allclose(logp[i, : len(c)], plain.detach(), atol=1e-5)
        assert logp[i, len(c):].abs().sum() == 0 and entropy[i, len(c):].abs().sum() == 0
        assert (entropy[i, : len(c)] > 0).all()
        total = total + (plain * weights[i, : len(c)]).sum()
    total.backward()
    for name, p in model.named_parameters():
        err = (ours[name] - p.grad).abs().max() / p.grad.abs().max()
        assert err < 1e-4, (name, err)
    model.zero_grad()


def test_chunked_head_matches_log_softmax_in_value_gradient_and_entropy():
    torch.manual_seed(0)
    hidden = torch.randn(11, 6, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(13, 6, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, 13, (11,))
    logp, entropy = linear_logprobs(hidden, weight, targets, temperature=0.5, chunk=3)
    logp_all = (hidden @ weight.T / 0.5).log_softmax(-1)
    assert torch.allclose(logp, logp_all.gather(-1, targets[:, None]).squeeze(-1), atol=1e-10)
    assert torch.allclose(entropy, -(logp_all.exp() * logp_all).sum(-1), atol=1e-10)
    assert torch.autograd.gradcheck(lambda h, w: linear_logprobs(h, w, targets, 0.5, 3)[0],
                                    (hidden, weight), atol=1e-4)


def test_chunked_head_does_not_store_tokens_times_vocab():
    """What autograd keeps for backward is O(N*H + V*H), never the N x V logits."""
    n, h, v = 64, 8, 1000
    hidden = torch.randn(n, h, requires_grad=True)
    weight = torch.randn(v, h, requires_grad=True)
    targets = torch.randint(0, v, (n,))
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.numel()) or t, lambda t: t):
        linear_logprobs(hidden, weight, targets, chunk=16)[0].sum().backward()
    assert sum(saved) <= n * h + v * h + 2 * n
    saved.clear()
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.numel()) or t, lambda t: t):
        (hidden @ weight.T).log_softmax(-1).gather(-1, targets[:, None]).sum().backward()
    assert max(saved) >= n * v  # the plain way does keep them


def test_micro_batches_respect_the_token_budget_and_cover_every_group_once():
    rng = random.Random(1)
    prompt_lengths = [rng.randint(5, 20) for _ in range(9)]
    completion_lengths = [[rng.randint(1, 40) for _ in range(4)] for _ in range(9)]
    batches = split_by_tokens(prompt_lengths, completion_lengths, token_budget=200)
    assert sorted(i for b in batches for i in b) == list(range(9))
    for b in batches:
        cost = len(b) * max(prompt_lengths[i] for i in b) + 4 * len(b) * max(max(completion_lengths[i]) for i in b)
        assert cost <= 200 or len(b) == 1
    assert len(split_by_tokens(prompt_lengths, completion_lengths, token_budget=10**9)) == 1


def test_a_long_straggler_group_is_padded_alone():
    prompt_lengths = [100] * 8
    completion_lengths = [[30] * 8 for _ in range(7)] + [[30] * 7 + [128]]
    batches = split_by_tokens(prompt_lengths, completion_lengths, token_budget=16384)
    assert batches == [list(range(7)), [7]]  # 8*128 padded rows would waste ~5,500 tokens
    same = [[30] * 8 for _ in range(8)]
    assert split_by_tokens(prompt_lengths, same, token_budget=16384) == [list(range(8))]


def test_cached_cast_weight_follows_fused_adamw_updates():
    """The LM head's cast weight is reused within a step; a fused AdamW step (which does not bump
    the version counter) must still invalidate it: log-probs after the step equal a fresh cast's."""
    from r1kit.models import logprobs as lp

    torch.manual_seed(0)
    hidden, targets = torch.randn(40, 16), torch.randint(0, 300, (40,))
    weight = torch.nn.Parameter(torch.randn(300, 16) * 0.1)
    opt = torch.optim.AdamW([weight], lr=1e-2, weight_decay=0.1, fused=True)
    for _ in range(2):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logp, _ = linear_logprobs(hidden, weight, targets, temperature=0.7)
        lp._scaled_weight.clear()  # a fresh cast
        with torch.autocast("cpu", dtype=torch.bfloat16):
            fresh, _ = linear_logprobs(hidden, weight, targets, temperature=0.7)
        assert torch.equal(logp, fresh)
        logp.sum().backward()
        opt.step()
        opt.zero_grad()
