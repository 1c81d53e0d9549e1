"""GRPO math on hand-computed numbers."""
import math

import pytest
import torch

from r1kit.grpo import core


def test_group_advantages_std_and_none():
    # group 1: rewards 1, 0, 0, 1 -> mean 0.5, population std 0.5 -> +-1 (eps shrinks it a hair)
    adv = core.group_advantages(torch.tensor([1.0, 0.0, 0.0, 1.0, 2.0, 2.0, 2.0, 2.0]), 4, "std", eps=0.0)
    assert adv[:4].tolist() == pytest.approx([1.0, -1.0, -1.0, 1.0])
    # group 2: all equal -> zeros, never NaN
    assert adv[4:].tolist() == [0.0, 0.0, 0.0, 0.0]
    drgrpo = core.group_advantages(torch.tensor([3.0, 1.0, 2.0]), 3, "none")
    assert drgrpo.tolist() == [1.0, -1.0, 0.0]


def test_group_advantages_eps_and_errors():
    adv = core.group_advantages(torch.tensor([1.0, 0.0]), 2, "std", eps=1e-4)
    assert adv[0].item() == pytest.approx(0.5 / (0.5 + 1e-4))
    with pytest.raises(ValueError):
        core.group_advantages(torch.tensor([1.0, 0.0, 1.0]), 2)
    with pytest.raises(ValueError):
        core.group_advantages(torch.tensor([1.0, 0.0]), 2, "bogus")


def test_clipped_surrogate_inside_and_outside_clip_range():
    old = torch.zeros(1, 3)
    # ratios 1.1 (inside), 1.5 (above 1+eps), 0.5 (below 1-eps)
    logp = torch.log(torch.tensor([[1.1, 1.5, 0.5]])).requires_grad_()
    loss, clipped = core.clipped_surrogate(logp, old, torch.tensor([2.0]), 0.2, 0.2)
    # A > 0: min(rho A, clip(rho) A) = [2.2, 2.4, 1.0]
    assert loss.tolist()[0] == pytest.approx([-2.2, -2.4, -1.0])
    assert clipped.tolist() == [[False, True, False]]
    loss.sum().backward()
    # d(-rho A)/d logp = -rho A where unclipped; 0 where the clipped branch is taken
    assert logp.grad.tolist()[0] == pytest.approx([-2.2, 0.0, -1.0])


def test_clipped_surrogate_negative_advantage_and_clip_higher():
    old = torch.zeros(1, 3)
    logp = torch.log(torch.tensor([[1.1, 1.5, 0.5]])).requires_grad_()
    loss, clipped = core.clipped_surrogate(logp, old, torch.tensor([-1.0]), 0.2, 0.2)
    # A < 0: min(-rho, -clip(rho)) = [-1.1, -1.5, -0.8]
    assert loss.tolist()[0] == pytest.approx([1.1, 1.5, 0.8])
    assert clipped.tolist() == [[False, False, True]]
    loss.sum().backward()
    assert logp.grad.tolist()[0] == pytest.approx([1.1, 1.5, 0.0])
    # clip-higher: eps_high 0.6 lets rho=1.5 through for A > 0
    loss_hi, clipped_hi = core.clipped_surrogate(logp.detach(), old, torch.tensor([1.0]), 0.2, 0.6)
    assert loss_hi[0, 1].item() == pytest.approx(-1.5)
    assert not clipped_hi[0, 1]


def test_k3_kl_zero_when_equal_and_nonnegative():
    logp = torch.log(torch.tensor([0.2, 0.5, 0.9]))
    assert core.k3_kl(logp, logp).abs().max().item() == 0.0
    ref = torch.log(torch.tensor([0.4, 0.25, 0.9]))
    kl = core.k3_kl(logp, ref)
    # d = log(0.4/0.2) = log 2 -> 2 - log 2 - 1
    assert kl[0].item() == pytest.approx(1 - math.log(2))
    assert kl[1].item() == pytest.approx(0.5 + math.log(2) - 1)
    torch.manual_seed(0)
    a, b = torch.randn(1000), torch.randn(1000)
    assert (core.k3_kl(a, b) >= 0).all()


LOSS = torch.tensor([[1.0, 2.0, 3.0, 0.0], [4.0, 0.0, 0.0, 0.0]])
MASK = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0]])


@pytest.mark.parametrize("mode,expected", [
    ("seq-mean-token-mean", (2.0 + 4.0) / 2),          # per-seq means 2 and 4
    ("token-mean", (1 + 2 + 3 + 4) / 4),                # all 4 tokens weigh the same
    ("seq-mean-token-sum-norm", (1 + 2 + 3 + 4) / (2 * 8)),  # G * max_len with max_len 8
])
def test_aggregations(mode, expected):
    assert core.aggregate(LOSS, MASK, mode, max_len=8).item() == pytest.approx(expected)


@pytest.mark.parametrize("mode", list(core.LOSS_AGGREGATIONS))
def test_micro_batches_add_up_to_the_full_batch(mode):
    torch.manual_seed(0)
    loss = torch.rand(6, 5)
    mask = (torch.rand(6, 5) > 0.3).long()
    mask[:, 0] = 1
    full = core.aggregate(loss, mask, mode, 5)
    parts = sum(core.aggregate(loss[i:i + 2], mask[i:i + 2], mode, 5, num_seqs=6, num_tokens=mask.sum())
                for i in range(0, 6, 2))
    assert parts.item() == pytest.approx(full.item())


def test_unknown_aggregation():
    with pytest.raises(ValueError, match="unknown loss aggregation"):
        core.aggregate(LOSS, MASK, "nope", 4)


def test_mu_gt_1_uses_old_logprobs():
    """With mu > 1 the ratio is taken against the *old* policy, so a moved policy is clipped."""
    adv = torch.tensor([1.0])
    mask = torch.ones(1, 2)
    moved = torch.log(torch.tensor([[1.5, 1.0]])).requires_grad_()  # policy after a first pass
    old = torch.zeros(1, 2)
    loss_old, stats_old = core.grpo_loss(moved, old, None, adv, mask)
    loss_self, stats_self = core.grpo_loss(moved, moved.detach(), None, adv, mask)
    assert stats_old["clip_frac"] == 0.5 and stats_self["clip_frac"] == 0.0
    assert loss_old.item() == pytest.approx(-(1.2 + 1.0) / 2)
    assert loss_self.item() == pytest.approx(-1.0)


def test_grpo_loss_beta_adds_kl():
    logp = torch.log(torch.tensor([[0.2, 0.5]]))
    ref = torch.log(torch.tensor([[0.4, 0.5]]))
    mask = torch.ones(1, 2)
    base, _ = core.grpo_loss(logp, logp, None, torch.tensor([0.0]), mask, beta=0.0)
    with_kl, stats = core.grpo_loss(logp, logp, ref, torch.tensor([0.0]), mask, beta=0.5)
    kl0 = 1 - math.log(2)
    assert base.item() == 0.0
    assert stats["kl"] == pytest.approx(kl0 / 2)
    assert with_kl.item() == pytest.approx(0.5 * kl0 / 2)


def test_overlong_soft_penalty():
    pen = core.overlong_soft_penalty(torch.tensor([10, 12, 14, 16, 20]), max_len=16, buffer=4)
    assert pen.tolist() == pytest.approx([0.0, 0.0, -0.5, -1.0, -1.0])


def test_gspo_sequence_ratio_and_clip_on_hand_computed_numbers():
    old = torch.zeros(2, 3)
    # row 0: ratios 1.1, 1.5, 0.5 -> s = (1.1 * 1.5 * 0.5) ** (1/3) = 0.825 ** (1/3) = 0.93795
    # row 1: ratios 1.21, 1.0 and a masked token (its ratio 9.0 must not count) -> s = sqrt(1.21) = 1.1
    logp = torch.log(torch.tensor([[1.1, 1.5, 0.5], [1.21, 1.0, 9.0]])).requires_grad_()
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    adv = torch.tensor([2.0, 1.0])
    loss, clipped = core.sequence_clipped_surrogate(logp, old, adv, mask, eps_low=0.2, eps_high=0.05)
    s0 = 0.825 ** (1 / 3)
    # row 0 inside the range: L = -s A; row 1 above 1 + 0.05 with A > 0: L = -1.05 * 1
    assert loss[0].tolist() == pytest.approx([-2 * s0] * 3)
    assert loss[1].tolist() == pytest.approx([-1.05] * 3)
    assert clipped.tolist() == [[False] * 3, [True] * 3]
    (loss[:, 0]).sum().backward()  # one copy of each L_i
    # dL_0/dlogp_t = -A s / |o| = -2 * 0.93795 / 3 on every token; the clipped row gets no gradient
    assert logp.grad[0].tolist() == pytest.approx([-2 * s0 / 3] * 3)
    assert logp.grad[1].tolist() == [0.0, 0.0, 0.0]


def test_gspo_loss_is_the_mean_over_sequences_and_equals_grpo_on_one_token():
    old = torch.zeros(2, 3)
    logp = torch.log(torch.tensor([[1.1, 1.5, 0.5], [1.21, 1.0, 9.0]]))
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    loss, stats = core.grpo_loss(logp, old, None, torch.tensor([2.0, 1.0]), mask, eps_low=0.2, eps_high=0.05,
                                 policy_loss="gspo")
    assert loss.item() == pytest.approx((-2 * 0.825 ** (1 / 3) - 1.05) / 2)
    assert stats["clip_frac"] == pytest.approx(2 / 5)  # row 1's two real tokens of the five
    # a one-token completion: the sequence ratio is the token ratio, so GSPO = GRPO
    one = torch.log(torch.tensor([[1.3], [0.7]]))
    m1 = torch.ones(2, 1)
    a = torch.tensor([1.0, -1.0])
    gspo, _ = core.grpo_loss(one, torch.zeros(2, 1), None, a, m1, policy_loss="gspo")
    grpo, _ = core.grpo_loss(one, torch.zeros(2, 1), None, a, m1, policy_loss="grpo")
    assert gspo.item() == pytest.approx(grpo.item())
    with pytest.raises(ValueError, match="policy loss"):
        core.grpo_loss(one, torch.zeros(2, 1), None, a, m1, policy_loss="bogus")


# rollout correction: log pi_old - log pi_sampler = log(r) with r = 0.5, 1.5, 3.0 on row 0 (3 tokens),
# r = 0.8, 1.25, (padding) on row 1
_RATIOS = torch.tensor([[0.5, 1.5, 3.0], [0.8, 1.25, 1.0]])
_MASK = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])


def _is(mode, level, cap=2.0):
    sampler = torch.zeros(2, 3)
    return core.rollout_correction_weights(torch.log(_RATIOS), sampler, _MASK, mode, level, cap)


def test_truncated_is_weights_token_and_sequence():
    # token: min(r, 2)
    assert _is("tis", "token").flatten().tolist() == pytest.approx([0.5, 1.5, 2.0, 0.8, 1.25, 1.0])
    # sequence: row 0 prod r = 0.5 * 1.5 * 3 = 2.25 -> capped at 2; row 1 = 0.8 * 1.25 = 1.0 (padding not counted)
    assert _is("tis", "sequence").flatten().tolist() == pytest.approx([2.0, 2.0, 2.0, 1.0, 1.0, 1.0])
    # a cap of 3 lets row 0's 2.25 through
    assert _is("tis", "sequence", cap=3.0)[0].tolist() == pytest.approx([2.25] * 3)


def test_masked_is_weights_token_and_sequence():
    # token: 1 where r <= 2: the 3.0 token is dropped
    assert _is("mis", "token").tolist() == [[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]]
    # sequence: row 0 (2.25 > 2) dropped whole, row 1 (1.0) kept
    assert _is("mis", "sequence").tolist() == [[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]]
    assert _is("mis", "sequence", cap=2.5).tolist() == [[1.0] * 3, [1.0] * 3]
    with pytest.raises(ValueError):
        _is("bogus", "token")
    with pytest.raises(ValueError):
        _is("tis", "bogus")


def test_is_weights_scale_the_policy_gradient_not_the_kl():
    logp = torch.zeros(1, 2, requires_grad=True)
    old, ref, mask, adv = torch.zeros(1, 2), torch.zeros(1, 2), torch.ones(1, 2), torch.tensor([1.0])
    w = torch.tensor([[0.5, 2.0]])
    loss, _ = core.grpo_loss(logp, old, ref, adv, mask, beta=0.1, agg="token-mean", is_weights=w)
    # ratio 1, A = 1: L_t = -w_t; KL is 0 at logp = ref: mean(-0.5, -2.0) = -1.25
    assert loss.item() == pytest.approx(-1.25)
    loss.backward()
    # d/dlogp_t of -w_t * exp(logp - old) / 2 = -w_t / 2; the k3 KL's gradient is 0 where logp = ref
    assert logp.grad.tolist()[0] == pytest.approx([-0.25, -1.0])
    plain, _ = core.grpo_loss(logp.detach(), old, ref, adv, mask, beta=0.1, agg="token-mean")
    assert plain.item() == pytest.approx(-1.0)


def test_mismatch_sums_hand_computed():
    trainer, sampler = torch.log(_RATIOS), torch.zeros(2, 3)
    m = core.mismatch_sums(trainer, sampler, _MASK, "token", cap=2.0)
    logs = [math.log(r) for r in (0.5, 1.5, 3.0, 0.8, 1.25)]
    assert m["tokens"] == 5
    assert m["diff_sum"] == pytest.approx(sum(abs(x) for x in logs))
    assert m["diff_max"] == pytest.approx(math.log(3.0))
    assert m["ratio_sum"] == pytest.approx(0.5 + 1.5 + 3.0 + 0.8 + 1.25)
    assert m["ratio_max"] == pytest.approx(3.0)
    assert m["capped"] == 1
    seq = core.mismatch_sums(trainer, sampler, _MASK, "sequence", cap=2.0)
    assert seq["ratio_sum"] == pytest.approx(3 * 2.25 + 2 * 1.0) and seq["capped"] == 3
    assert core.mismatch_sums(trainer, sampler, torch.zeros(2, 3), "token", 2.0)["tokens"] == 0
