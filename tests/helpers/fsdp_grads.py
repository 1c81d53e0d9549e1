"""Run under torchrun (or alone): one GRPO optimiser step on a fixed global batch with a strategy.

Every rank samples the same fixed batch (same weights, same seed, one thread), keeps its share
(``ddp.shard``) and runs the trainer's own prepare/accumulate, the strategy's clipping and the
optimiser step; rank 0 saves the loss, the full gradients, the gradient norm and the full updated
weights to OUT.
usage: fsdp_grads.py OUT RUN_DIR STRATEGY
"""
import sys

import torch

from r1kit.config import load_config
from r1kit.distributed import ddp
from r1kit.grpo.config import ZeroConfig
from r1kit.grpo.step import StepStats, accumulate, frozen_logprobs, layout
from r1kit.grpo.trainer import GRPOTrainer


def _full(t):
    return t.full_tensor() if hasattr(t, "full_tensor") else t


def main(out: str, run_dir: str, strategy: str) -> None:
    torch.set_num_threads(1)
    cfg = load_config(ZeroConfig, None, [
        "model=tiny", "data=synthetic", "grpo.eps_high=0.2",  # helpers.ARITHMETIC (run as a script)
        "grpo.prompts_per_step=4", "grpo.group_size=4", "rollout.max_new_tokens=48", "eval.every=0",
        "log_tensorboard=false", "grpo.beta=0.04", "grpo.micro_batch_tokens=200", "optim.warmup_steps=0",
        f"distributed.strategy={strategy}", f"out={run_dir}"])
    trainer = GRPOTrainer(cfg, progress=False)
    models = trainer.models
    ids, examples = trainer.stream.take_indexed(cfg.grpo.prompts_per_step)
    groups = trainer.source.sample_groups(ids, examples, 1234, trainer.step)  # identical on every rank
    mine = ddp.shard(groups)
    lb = layout(mine, models, cfg, trainer.tokenizer.pad_token_id)
    frozen_logprobs(lb, mine, models, cfg, trainer.step)
    loss = accumulate(lb, models, cfg, StepStats())
    grads = {n: _full(p.grad).clone() for n, p in models.policy.named_parameters()}
    norm = models.strategy.clip_grad_norm(models.policy, cfg.optim.max_grad_norm)
    models.optimizer.step()
    weights = {n: v.clone() for n, v in models.strategy.full_state_dict(models.policy).items()}
    result = {"loss": loss, "world": ddp.world_size(), "shard": len(mine), "passes": len(lb.micro),
              "real": sum(not mb.filler for mb in lb.micro), "grads": grads, "norm": norm, "weights": weights,
              "tokens": [[r.token_ids for r in grp.rollouts] for grp in groups]}
    if ddp.is_main():
        torch.save(result, out)
    ddp.barrier()


if __name__ == "__main__":
    main(*sys.argv[1:4])
