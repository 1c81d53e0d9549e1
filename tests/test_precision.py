"""bfloat16 on the CPU: float32 master weights, bf16 compute, and updates that are not rounded away."""
import torch

from r1kit.config import load_config
from r1kit.grpo.config import ZeroConfig
from r1kit.models.logprobs import completion_logprobs, make_group_batch
from r1kit.grpo.trainer import GRPOTrainer
from r1kit.models import load_model
from r1kit.models.precision import SamplingCopy, compute_context
from helpers import ARITHMETIC


def test_bf16_parameters_lose_most_adamw_updates():
    """Why r1kit keeps float32 master weights: the same AdamW steps on bf16 storage barely move it."""
    torch.manual_seed(0)
    start = torch.randn(256, 256) * 0.05
    moved = {}
    for dtype in (torch.float32, torch.bfloat16):
        w = torch.nn.Parameter(start.to(dtype, copy=True))
        opt = torch.optim.AdamW([w], lr=2e-5, weight_decay=0.0)
        gen = torch.Generator().manual_seed(1)
        for _ in range(5):
            w.grad = torch.randn(w.shape, generator=gen).to(dtype)
            opt.step()
        moved[dtype] = (w.detach().float() - start.to(dtype).float()).abs().mean().item()
    assert moved[torch.float32] > 2e-5  # at least one lr on average over 5 random-direction steps
    assert moved[torch.bfloat16] < 0.25 * moved[torch.float32]


def test_autocast_gradients_match_float32():
    model = load_model("tiny")
    batch = make_group_batch([[5, 6, 7, 8], [9, 10]], [[11, 12, 13], [14, 15], [16], [17, 18, 19, 20]],
                             group_size=2, pad_id=0)
    grads = {}
    for dtype in ("float32", "bfloat16"):
        model.zero_grad()
        with compute_context(model, dtype):
            logp, _ = completion_logprobs(model, batch, temperature=1.0)
        assert logp.dtype == torch.float32
        (logp * batch.completion_mask).sum().backward()
        grads[dtype] = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
    cos = torch.nn.functional.cosine_similarity(grads["float32"], grads["bfloat16"], dim=0).item()
    assert cos > 0.99
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_sampling_copy_follows_the_policy():
    policy = load_model("tiny")
    copy = SamplingCopy(policy, "bfloat16")
    assert copy.model is not policy and copy.model.dtype == torch.bfloat16
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(0.01)
    assert not torch.equal(copy.model.lm_head.weight.float(), policy.lm_head.weight.to(torch.bfloat16).float())
    copy.refresh()
    for (name, a), b in zip(policy.state_dict().items(), copy.model.state_dict().values()):
        assert torch.equal(a.to(torch.bfloat16), b), name
    assert SamplingCopy(policy, "float32").model is policy


def test_bf16_grpo_steps_move_weights_by_the_learning_rate(tmp_path):
    """Adam's first update is about lr per weight; in bf16 storage most of it would round away."""
    lr = 1e-5
    cfg = load_config(ZeroConfig, None, [
        *ARITHMETIC, "dtype=bfloat16", "steps=1", "grpo.prompts_per_step=2", "grpo.group_size=4", "rollout.max_new_tokens=32",
        "eval.every=0", "log_tensorboard=false", f"optim.lr={lr}", "optim.warmup_steps=0",
        f"out={tmp_path / 'run'}"])
    trainer = GRPOTrainer(cfg, progress=False)
    assert trainer.policy.dtype == torch.float32 and trainer.sampler.model.dtype == torch.bfloat16
    before = {n: p.detach().clone() for n, p in trainer.policy.named_parameters()}
    trainer.train()
    deltas = torch.cat([(p.detach() - before[n]).abs().flatten() for n, p in trainer.policy.named_parameters()
                        if p.grad is not None and p.grad.abs().sum() > 0])
    assert deltas.median().item() > 0.5 * lr  # bf16 storage: most of these would be 0
    saved = load_model(str(tmp_path / "run" / "checkpoint-1"))
    assert torch.equal(saved.lm_head.weight, trainer.policy.lm_head.weight)  # saved from the fp32 master
    for a, b in zip(trainer.policy.parameters(), trainer.sampler.model.parameters()):
        assert torch.equal(a.to(torch.bfloat16), b)  # sampling sees this step's weights
