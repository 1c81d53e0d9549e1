"""Typed configuration of a GRPO run (``r1kit zero``). Every option is documented here, once."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from r1kit.eval.evaluate import DEFAULT_REFLECTION_PHRASES
from r1kit.rewards.reward_model import RewardModelConfig


@dataclass
class GRPOConfig:
    """The algorithm (SPEC.md "GRPO") and its well-known variants.

    group_size: G, completions sampled per prompt.
    prompts_per_step: questions per optimiser batch (batch = prompts_per_step * group_size outputs).
    beta: KL coefficient to the frozen reference policy (k3 estimator); 0 loads no reference model.
    eps_low/eps_high: clip range of the ratio, [1 - eps_low, 1 + eps_high]; eps_high > eps_low is
        DAPO's clip-higher.
    mu: optimisation passes (optimiser steps) per batch, all against the old policy's log-probs.
    advantage_scale: ``std`` divides by the group std (GRPO); ``none`` only centres (Dr. GRPO).
    loss_agg: ``seq-mean-token-mean`` (GRPO), ``token-mean`` (DAPO) or
        ``seq-mean-token-sum-norm`` (Dr. GRPO, normalised by max_new_tokens).
    dynamic_sampling: drop groups whose rewards are all equal and refill the batch (DAPO).
    max_refill_rounds: with dynamic sampling, extra sampling rounds per step before giving up.
    overlong: ``none``; ``mask`` excludes truncated completions from the loss; ``soft`` adds DAPO's
        linear length penalty over the last ``overlong_buffer`` tokens.
    overlong_buffer: tokens of the soft-penalty ramp.
    micro_batch_tokens: padded tokens per forward/backward (whole groups; gradients are accumulated).
        Each group's prompt is run once for its G completions, so a group costs about
        prompt_len + G * completion_len tokens.
    """

    group_size: int = 8
    prompts_per_step: int = 8
    beta: float = 0.0
    eps_low: float = 0.2
    eps_high: float = 0.2
    mu: int = 1
    advantage_scale: Literal["std", "none"] = "std"
    loss_agg: Literal["seq-mean-token-mean", "token-mean", "seq-mean-token-sum-norm"] = "seq-mean-token-mean"
    dynamic_sampling: bool = False
    max_refill_rounds: int = 3
    overlong: Literal["none", "mask", "soft"] = "none"
    overlong_buffer: int = 16
    micro_batch_tokens: int = 16384


@dataclass
class OptimConfig:
    """AdamW and its schedule.

    lr: peak learning rate. weight_decay: AdamW decoupled decay. warmup_steps: linear warm-up.
    schedule: ``constant`` or ``cosine`` (to 10% of lr) after warm-up. max_grad_norm: clipping.
    """

    lr: float = 2e-4
    weight_decay: float = 0.0
    warmup_steps: int = 5
    schedule: Literal["constant", "cosine"] = "constant"
    max_grad_norm: float = 1.0


@dataclass
class RolloutConfig:
    """Sampling of training completions (the policy is sampled as is: temperature 1, no top-p).

    temperature/top_p/top_k: decoding. max_new_tokens: completion cap (longer ones are truncated).
    """

    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    max_new_tokens: int = 256


@dataclass
class PeriodicEvalConfig:
    """Held-out evaluation during training with the paper's protocol.

    every: evaluate every N steps (and before the first and after the last); 0 disables.
    data: benchmark name, ``synthetic``, ``synthetic_code`` or a file. limit: first N problems. k: samples per problem.
    temperature/top_p: 0.6 / 0.95 as in the paper. max_new_tokens: completion cap.
    """

    every: int = 25
    data: str = "synthetic"
    limit: int | None = 200
    k: int = 4
    temperature: float = 0.6
    top_p: float = 0.95
    max_new_tokens: int = 256


@dataclass
class DistributedConfig:
    """Scaling out (``r1kit.distributed``): Ray rollout/reward workers, multi-process training.

    backend: ``none`` (everything in this process) or ``ray`` (rollout actors + reward workers).
    address: Ray cluster to join: ``None`` starts a private local cluster on 127.0.0.1; ``auto``
        joins the cluster started on this machine with ``ray start``; ``HOST:6379`` joins a
        remote head.
    num_cpus: Ray CPUs (scheduling slots) of the private local cluster; None: the machine's core
        count, or more if the actors reserve more (rollout_actors x actor_cpus + 0.5 per reward
        worker). Actors that a cluster cannot place make the run fail with what they lack.
    rollout_actors: N Ray actors, each holding a policy copy and the rollout engine.
    actor_cpus: Ray CPUs reserved per rollout actor. actor_threads: torch threads per actor.
    actor_device: ``cpu`` or ``cuda`` (each actor then asks Ray for one GPU).
    reward_workers: Ray actors scoring rewards (the code sandbox runs there); 0 scores in the
        trainer's process.
    reward_timeout: seconds a reward batch may take; past it (or if its worker dies) its samples
        score 0 with a counted reason and the worker is replaced.
    reward_modules: Python modules imported (by the trainer and every reward worker) before
        scoring, so that rewards they ``register`` exist in the workers.
    max_weight_lag: 0 (default): every sample comes from the weights of the current step. L > 0
        lets actors sample the next step's prompts while this step trains (one step ahead, so
        one version old), accepting weights up to L versions old; the importance ratio then uses
        the sampler's log-probs as pi_old. The version is recorded with every sample.
    max_actor_restarts: replacements of dead rollout actors before the run fails.
    rollout_timeout: seconds a sampling round may go without any task finishing; then the actors
        still busy count as hung: they are killed, replaced, and their tasks re-queued.
    sample_log: with the ray backend, write ``samples.jsonl`` (step, prompt id, sample index,
        weight version, actor, reward) for every sample.
    """

    backend: Literal["none", "ray"] = "none"
    address: str | None = None
    num_cpus: int | None = None
    rollout_actors: int = 2
    actor_cpus: float = 1.0
    actor_threads: int = 1
    actor_device: Literal["cpu", "cuda"] = "cpu"
    reward_workers: int = 1
    reward_timeout: float = 120.0
    reward_modules: list[str] = field(default_factory=list)
    max_weight_lag: int = 0
    max_actor_restarts: int = 8
    rollout_timeout: float = 1800.0
    sample_log: bool = True


@dataclass
class ZeroConfig:
    """An R1-Zero run: GRPO with rule-based rewards straight on a base model.

    model: HF folder, hub id, ``tiny-reflect`` (the default: the embedded base whose corpus makes
        re-checking pay, r1kit.models.tiny), ``tiny`` (the original embedded base) or
        ``smollm2-135m`` (a real pretrained model, r1kit.models.gguf).
    dtype: compute dtype, ``float32`` or ``bfloat16``. With ``bfloat16`` the weights and optimiser
        state stay float32 (bf16 weights would round most updates away); sampling uses a bf16 copy
        refreshed every step and training runs under autocast (r1kit.models.precision).
    data: training prompts: ``synthetic`` (r1kit's arithmetic task), ``synthetic_code`` (the same
        problems as "write a program that prints ...", graded in the sandbox by the ``code``
        reward), a benchmark name or a JSONL/Parquet file with ``problem`` and ``answer`` (and
        ``tests`` or ``test`` for code). train_size: prompts drawn for the synthetic tasks.
    data_dir: where benchmark names are resolved (default: ``../shared/data`` or $R1KIT_DATA_DIR).
    template: prompt template (``r1_zero``, ``chat``, ``plain``).
    rewards: reward name -> weight; the step's reward is the weighted sum.
    rewards_by_kind: prompt kind -> its own reward weights, used instead of ``rewards`` for prompts
        whose ``kind`` field names it (R1's all-scenario RL: ``{general: {helpfulness: 1.0,
        harmlessness: 1.0}}``); prompts of other kinds, or without one, use ``rewards``.
    reward_models: name -> a sequence-classification reward model (``r1kit.rewards.reward_model``:
        path, and the part of the response it judges, ``summary`` or ``whole``), registered as a
        reward of that name for ``rewards``/``rewards_by_kind``.
    accuracy_reward: the reward whose mean is logged as ``accuracy``.
    steps: optimiser batches to run. seed: seeds data order, sampling and initial RNG state.
    out: run directory (metrics.jsonl, eval.jsonl, checkpoints, report).
    checkpoint_every: save ``checkpoint-STEP`` every N steps (and at the end); 0 only at the end.
    keep_checkpoints: how many of the newest checkpoints to keep.
    reflection_phrases: self-verification phrases counted by the reflection rate.
    log_tensorboard: also write TensorBoard events when ``tensorboard`` is installed.
    threads: torch CPU threads (0 keeps torch's default). 1 by default: the tiny models gain little
        from a second thread and lose much when other processes share the cores.
    distributed: Ray rollout/reward workers (``DistributedConfig``). Multi-process training needs
        no option: run under ``torchrun --nproc-per-node K`` (r1kit.distributed.ddp).
    """

    model: str = "tiny-reflect"
    dtype: Literal["float32", "bfloat16"] = "float32"
    data: str = "synthetic"
    train_size: int = 20000
    data_dir: str | None = None
    template: Literal["r1_zero", "chat", "plain"] = "r1_zero"
    rewards: dict[str, float] = field(default_factory=lambda: {"accuracy_math": 1.0, "format": 0.5})
    rewards_by_kind: dict[str, dict[str, float]] = field(default_factory=dict)
    reward_models: dict[str, RewardModelConfig] = field(default_factory=dict)
    accuracy_reward: str = "accuracy_math"
    steps: int = 200
    seed: int = 0
    out: str = "runs/zero"
    checkpoint_every: int = 50
    keep_checkpoints: int = 2
    reflection_phrases: list[str] = field(default_factory=lambda: list(DEFAULT_REFLECTION_PHRASES))
    log_tensorboard: bool = True
    threads: int = 1
    grpo: GRPOConfig = field(default_factory=GRPOConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    eval: PeriodicEvalConfig = field(default_factory=PeriodicEvalConfig)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)
