"""Run under torchrun (or alone): loss and gradients of one GRPO pass on a fixed global batch.

Every rank samples the same fixed batch (same weights, same seed, one thread), keeps its share
(``ddp.shard``) and runs the trainer's own ``_prepare``/``_accumulate``; rank 0 saves the loss and
the (all-reduced) gradients per loss aggregation to OUT.
usage: ddp_grads.py OUT RUN_DIR
"""
import sys

import torch

from r1kit.config import load_config
from r1kit.distributed import ddp
from r1kit.grpo.config import ZeroConfig
from r1kit.grpo.step import StepStats, accumulate, frozen_logprobs, layout
from r1kit.grpo.trainer import GRPOTrainer

AGGS = ["seq-mean-token-mean", "token-mean", "seq-mean-token-sum-norm"]


def main(out: str, run_dir: str) -> None:
    torch.set_num_threads(1)
    results = {}
    for agg in AGGS:
        cfg = load_config(ZeroConfig, None, [
            "model=tiny", "data=synthetic", "grpo.eps_high=0.2",  # helpers.ARITHMETIC (run as a script)
            "grpo.prompts_per_step=3", "grpo.group_size=4", "rollout.max_new_tokens=48", "eval.every=0",
            "log_tensorboard=false", "grpo.beta=0.04", "grpo.micro_batch_tokens=200", f"grpo.loss_agg={agg}",
            f"out={run_dir}/{agg}"])
        trainer = GRPOTrainer(cfg, progress=False)
        ids, examples = trainer.stream.take_indexed(cfg.grpo.prompts_per_step)
        groups = trainer.source.sample_groups(ids, examples, 1234, trainer.step)  # identical on every rank
        mine = ddp.shard(groups)
        lb = layout(mine, trainer.models, cfg, trainer.tokenizer.pad_token_id)
        frozen_logprobs(lb, mine, trainer.models, cfg, trainer.step)
        loss = accumulate(lb, trainer.models, cfg, StepStats())
        tokens = [[r.token_ids for r in grp.rollouts] for grp in groups]
        results[agg] = {"loss": loss, "world": ddp.world_size(), "shard": len(mine), "tokens": tokens,
                        "grads": {n: p.grad.clone() for n, p in trainer.policy.named_parameters()}}
    if ddp.is_main():
        torch.save(results, out)
    ddp.barrier()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
