"""Typed configuration of a GRPO run (``r1kit zero``). Every option is documented here, once."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import ClassVar, Literal

from r1kit.config import AT_LEAST_1, NON_NEGATIVE, POSITIVE, ConfigError, Range, import_modules
from r1kit.distributed.cluster import require_ray
from r1kit.environments import check_environment, check_environment_options
from r1kit.environments.config import ToolConfig
from r1kit.eval.config import DEFAULT_REFLECTION_PHRASES, EvalConfig
from r1kit.models.config import LoRAConfig, check_device
from r1kit.rewards import DEFAULT_TIMEOUT_S as DEFAULT_REWARD_TIMEOUT_S, available_rewards
from r1kit.rewards.config import RewardModelConfig
from r1kit.rollout.config import Engine, EndpointConfig, check_engine


@dataclass
class GRPOConfig:
    """GRPO (DeepSeekMath, Shao et al. 2024) and its well-known variants.

    group_size: G, completions sampled per prompt.
    prompts_per_step: questions per optimiser batch (batch = prompts_per_step * group_size outputs).
    beta: KL coefficient to the frozen reference policy (k3 estimator); 0 loads no reference model.
    eps_low/eps_high: clip range of the ratio, [1 - eps_low, 1 + eps_high]; eps_high > eps_low is
        DAPO's clip-higher (the default 0.28 is DAPO's value: a rare token that pays, such as a
        first check, may gain more probability in a step than a token may lose).
    mu: optimisation passes (optimiser steps) per batch, all against the old policy's log-probs.
    policy_loss: ``grpo`` (a clipped ratio per token) or ``gspo`` (GSPO, Zheng et al. 2025: one
        length-normalised ratio per sequence, clipped per sequence; use it with
        ``seq-mean-token-mean`` and a narrow clip range, e.g. eps_low 3e-4, eps_high 4e-4).
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
    rollout_correction: how the loss corrects for the gap between the sampler's log-probs (the
        rollout engine's, ``Rollout.logprobs``) and the trainer's (other kernels, bf16, or older
        weights with ``rollout.async_steps`` / ``distributed.max_weight_lag``). ``none``: no
        correction (samples of older weights then use the sampler's log-probs as pi_old). ``tis``
        (truncated importance sampling): pi_old is the trainer's own log-probs of the sampled
        tokens (with mu 1 the detached current ones: no extra forward) and each token's
        policy-gradient loss is multiplied by w = min(pi_old / pi_sampler, C). ``mis`` (masked
        importance sampling): w = 1 where pi_old / pi_sampler <= C, else 0. The gap is logged every
        step whatever the choice (``rollout/logprob_diff_*``, ``rollout/is_ratio_*``,
        ``rollout/is_capped_frac``; docs/off-policy.md).
    rollout_correction_level: ``token`` (one ratio per token) or ``sequence`` (one ratio per
        completion: exp of the sum of its tokens' log-ratios, applied to all its tokens).
    rollout_correction_cap: C, the cap (tis) or threshold (mis) of the ratio; >= 1.
    """

    group_size: int = 8
    prompts_per_step: int = 8
    beta: float = 0.0
    eps_low: float = 0.2
    eps_high: float = 0.28
    mu: int = 1
    policy_loss: Literal["grpo", "gspo"] = "grpo"
    advantage_scale: Literal["std", "none"] = "std"
    loss_agg: Literal["seq-mean-token-mean", "token-mean", "seq-mean-token-sum-norm"] = "seq-mean-token-mean"
    dynamic_sampling: bool = False
    max_refill_rounds: int = 3
    overlong: Literal["none", "mask", "soft"] = "none"
    overlong_buffer: int = 16
    micro_batch_tokens: int = 16384
    rollout_correction: Literal["none", "tis", "mis"] = "none"
    rollout_correction_level: Literal["token", "sequence"] = "token"
    rollout_correction_cap: float = 2.0

    ranges: ClassVar = {"rollout_correction_cap": Range(1), "group_size": Range(2), "prompts_per_step": AT_LEAST_1, "beta": NON_NEGATIVE,
                        "eps_low": Range(0, 1, open_high=True), "eps_high": NON_NEGATIVE, "mu": AT_LEAST_1,
                        "max_refill_rounds": NON_NEGATIVE, "overlong_buffer": AT_LEAST_1,
                        "micro_batch_tokens": AT_LEAST_1}


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

    ranges: ClassVar = {"lr": POSITIVE, "weight_decay": NON_NEGATIVE, "warmup_steps": NON_NEGATIVE,
                        "max_grad_norm": POSITIVE}


@dataclass
class RolloutConfig:
    """Sampling of training completions (the policy is sampled as is: temperature 1, no top-p).

    temperature/top_p/top_k: decoding. max_new_tokens: completion cap (longer ones are truncated);
        null: the task's (``TASKS``: 448 for ``countdown``, where answers grow to hundreds of
        tokens, else 128).
    engine: what samples (r1kit.rollout.engines): ``torch`` (r1kit's decode loop in this process)
        or ``vllm`` (a vLLM server, weights pushed after every optimiser step; docs/engines.md).
    endpoint: the vLLM server's options (``EndpointConfig`` in r1kit/rollout/config.py: the
        interpreter to start it with, extra server arguments, or the URL of a running one).
    async_steps: 0 (default): a step trains on samples of its own weights. 1: one-step-off-policy:
        step t + 1's prompts are sampled while step t trains, so each step from the second on trains
        on samples of the previous step's weights (recorded as ``weight_version``; pi_old is then
        the sampler's log-probs, or see ``grpo.rollout_correction``). The torch engine then samples
        in a second process with its own copy of the weights (r1kit.rollout.process), pushed after
        every optimiser step. Needs ``distributed.backend: none`` and no dynamic sampling
        (docs/off-policy.md).
    async_timeout: with async_steps 1, seconds a sampling round may take in the worker process
        before the run fails with an error naming it (a hung worker never hangs the run).
    """

    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    max_new_tokens: int | None = None
    engine: Engine = "torch"
    endpoint: EndpointConfig = field(default_factory=EndpointConfig)
    async_steps: int = 0
    async_timeout: float = 1800.0

    on_resume: ClassVar = ("async_timeout",)
    ranges: ClassVar = {"temperature": NON_NEGATIVE, "top_p": Range(0, 1, open_low=True), "top_k": NON_NEGATIVE,
                        "max_new_tokens": AT_LEAST_1, "async_steps": Range(0, 1), "async_timeout": POSITIVE}


@dataclass
class PeriodicEvalConfig(EvalConfig):
    """Held-out evaluation during training: :class:`r1kit.eval.config.EvalConfig`'s options (its
    unset template, seed and reflection phrases are the run's), and how often.

    data/max_new_tokens: as in ``EvalConfig``; null: the task's held-out set and budget (``TASKS``:
        the run's ``data`` picks them; ``synthetic`` and 128 for a file or a benchmark).
    every: evaluate every N steps (and before the first and after the last); 0 disables.
    """

    data: str | None = None
    max_new_tokens: int | None = None
    every: int = 25

    ranges: ClassVar = {"every": NON_NEGATIVE}
    on_resume: ClassVar = ("every",)


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
    max_weight_lag: 0 (default): every sample comes from the weights of the current step. L > 0
        lets actors sample the next step's prompts while this step trains (one step ahead, so
        one version old), accepting weights up to L versions old; the importance ratio then uses
        the sampler's log-probs as pi_old. The version is recorded with every sample.
    max_actor_restarts: replacements of dead rollout actors before the run fails.
    rollout_timeout: seconds a sampling round may go without any task finishing; then the actors
        still busy count as hung: they are killed, replaced, and their tasks re-queued.
    strategy: under ``torchrun``, how the policy (and the reference) is laid out over the ranks:
        ``ddp`` (a whole copy per rank, gradients all-reduced) or ``fsdp`` (FSDP2: weights,
        gradients and optimiser state sharded; r1kit.distributed.strategy). Alone, both are plain
        training.
    collective_timeout: under ``torchrun``, seconds a collective (gradient all-reduce, batch
        broadcast, barrier) may wait for the other ranks; past it the run fails with an error naming
        the rank and the operation instead of hanging.
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
    max_weight_lag: int = 0
    max_actor_restarts: int = 8
    rollout_timeout: float = 1800.0
    sample_log: bool = True
    strategy: Literal["ddp", "fsdp"] = "ddp"
    collective_timeout: float = 1800.0

    on_resume: ClassVar = ("address", "num_cpus", "rollout_timeout", "reward_timeout", "max_actor_restarts",
                           "sample_log", "collective_timeout")
    ranges: ClassVar = {"collective_timeout": POSITIVE, "num_cpus": AT_LEAST_1, "rollout_actors": AT_LEAST_1, "actor_cpus": NON_NEGATIVE,
                        "actor_threads": NON_NEGATIVE, "reward_workers": NON_NEGATIVE, "reward_timeout": POSITIVE,
                        "max_weight_lag": NON_NEGATIVE, "max_actor_restarts": NON_NEGATIVE,
                        "rollout_timeout": POSITIVE}


@dataclass(frozen=True)
class TaskDefaults:
    """What a training set implies for the options a run leaves null (``ZeroConfig.resolved``).

    rewards/accuracy_reward/curriculum: as in ``ZeroConfig``. max_new_tokens: the training and
    periodic-evaluation budget. eval_data: the held-out set of the periodic evaluation.
    """

    rewards: dict[str, float]
    accuracy_reward: str
    curriculum: Literal["shuffle", "ramp"] = "shuffle"
    max_new_tokens: int = 128
    eval_data: str = "synthetic"


# a benchmark or a file of problems: graded as math, evaluated on r1kit's arithmetic held-out set
MATH_TASK = TaskDefaults({"accuracy_math": 1.0, "format": 0.5}, "accuracy_math")
TASKS = {
    # the "aha" run (docs/phenomena.md): 3-number problems first, 4-number ones rising to all
    "countdown": TaskDefaults({"accuracy_countdown": 1.0, "format": 0.5}, "accuracy_countdown", "ramp", 448,
                              "countdown"),
    "synthetic": MATH_TASK,
    "synthetic_code": TaskDefaults({"code": 1.0, "format": 0.5}, "code", eval_data="synthetic_code"),
    "synthetic_calc": TaskDefaults(MATH_TASK.rewards, "accuracy_math", eval_data="synthetic_calc"),
}


@dataclass
class ZeroConfig:
    """An R1-Zero run: GRPO with rule-based rewards straight on a base model.

    model: HF folder, hub id, ``tiny-countdown`` (the embedded base of the Countdown task: the
        default run is the "aha" run of docs/phenomena.md), ``tiny`` (the embedded arithmetic base;
        ``model=tiny data=synthetic`` is the arithmetic run), another embedded base
        (r1kit.models.PACKAGED_SIZES) or ``smollm2-135m`` (a real pretrained model, r1kit.models.gguf).
    device: where the policy, the reference, the sampling copy, the optimiser state and the step's
        tensors live: ``auto`` (a CUDA GPU when one is visible, else the CPU), ``cpu``, ``cuda``
        (under ``torchrun``: the rank's own GPU) or ``cuda:N`` (r1kit.models.device).
    dtype: compute dtype, ``float32`` or ``bfloat16``. With ``bfloat16`` the weights and optimiser
        state stay float32 (bf16 weights would round most updates away); sampling uses a bf16 copy
        refreshed every step and training runs under autocast (r1kit.models.precision).
    data: training prompts, which also pick the options left null (``TASKS``): ``countdown``
        (``reach 16 with 7 3 5``: r1kit.data.countdown), ``synthetic`` (r1kit's arithmetic task),
        ``synthetic_code`` (the same problems as "write a program that prints ...", graded in the
        sandbox by the ``code`` reward), ``synthetic_calc`` (products and sums of 2-3 digit
        numbers, for the ``calculator`` environment: r1kit.data.calc), a benchmark name or a
        JSONL/Parquet file with ``problem`` and ``answer`` (and
        ``tests`` or ``test`` for code). train_size: prompts drawn for the synthetic tasks.
    data_dir: where benchmark names are resolved (default: $R1KIT_DATA_DIR, else r1kit's shipped copies).
    template: prompt template (``r1_zero``, ``chat``, ``plain``).
    rewards: reward name -> weight; the step's reward is the weighted sum (r1kit.rewards lists the
        built-in rewards); null: the task's (``TASKS``: ``{accuracy_countdown: 1.0, format: 0.5}``
        for ``countdown``, ``{code: 1.0, format: 0.5}`` for ``synthetic_code``, else
        ``{accuracy_math: 1.0, format: 0.5}``).
    reward_modules: Python modules to import before the rewards are looked up (by the trainer and
        every Ray reward worker), so that rewards they ``register`` can be named in ``rewards``.
    rewards_by_kind: prompt kind -> its own reward weights, used instead of ``rewards`` for prompts
        whose ``kind`` field names it (R1's all-scenario RL: ``{general: {helpfulness: 1.0,
        harmlessness: 1.0}}``); prompts of other kinds, or without one, use ``rewards``.
    reward_models: name -> a sequence-classification reward model (``r1kit.rewards.reward_model``:
        path, and the part of the response it judges, ``summary`` or ``whole``), registered as a
        reward of that name for ``rewards``/``rewards_by_kind``.
    accuracy_reward: the reward whose mean is logged as ``accuracy``; null: the task's.
    reward_timeout: seconds one call of a reward may take in this process (a batched reward's call
        covers its batch); past it the call scores 0, counted with the reason in ``reward/failures``.
        0: no limit. (Ray reward workers: ``distributed.reward_timeout`` bounds each batch.)
    curriculum: the order of the training prompts (null: the task's, ``ramp`` for ``countdown``, else
        ``shuffle``). ``shuffle``: a fresh seeded shuffle each epoch.
        ``ramp``: rising difficulty over the run (r1kit.grpo.sources.RampStream): every problem
        carries an integer ``level`` (``data: countdown``: 3 or 4 numbers), and the harder levels'
        share rises linearly from none at the first step to all at the last (``steps`` x
        ``grpo.prompts_per_step`` prompts; a resume that changes ``steps`` rescales it).
    steps: optimiser batches to run. seed: seeds data order, sampling and initial RNG state.
    out: run directory (metrics.jsonl, eval.jsonl, checkpoints, report).
    checkpoint_every: save ``checkpoint-STEP`` every N steps (and at the end); 0 only at the end.
    keep_checkpoints: how many of the newest checkpoints to keep.
    reflection_phrases: self-verification phrases counted by the reflection rate.
    log_tensorboard: also write TensorBoard events when ``tensorboard`` is installed.
    threads: torch CPU threads (0: auto, as many as other processes leave free, see r1kit.threads; N: fixed).
    lora: low-rank adapters instead of full fine-tuning (``LoRAConfig`` in r1kit/models/lora.py;
        ``lora.r: 16`` turns it on): only the adapters train, the beta > 0 reference is the policy
        with its adapters off, sampling uses a merged copy, checkpoints hold the adapters.
    environment: ``none`` (single-turn: one completion per prompt, scored at the end) or the name
        of an environment (``calculator``, ``python``, or one registered by a module listed in
        ``environment_modules``; r1kit.environments, docs/tools.md): multi-turn episodes in which
        every tool call the model closes is run and its output appended before the model goes on;
        observation tokens are masked from the loss and from every length figure.
    environment_modules: Python modules to import before the environment is looked up.
    tools: how episodes run (``ToolConfig``: max_turns, max_output_chars, timeout); the episode's
        total token budget is ``rollout.max_new_tokens``.
    distributed: Ray rollout/reward workers and multi-process training (``DistributedConfig``):
        run under ``torchrun --nproc-per-node K`` (r1kit.distributed.ddp); ``distributed.strategy``
        picks DDP or FSDP2.
    """

    model: str = "tiny-countdown"
    device: str = "auto"
    dtype: Literal["float32", "bfloat16"] = "float32"
    data: str = "countdown"
    train_size: int = 20000
    data_dir: str | None = None
    template: Literal["r1_zero", "chat", "plain"] = "r1_zero"
    rewards: dict[str, float] | None = None
    reward_modules: list[str] = field(default_factory=list)
    rewards_by_kind: dict[str, dict[str, float]] = field(default_factory=dict)
    reward_models: dict[str, RewardModelConfig] = field(default_factory=dict)
    accuracy_reward: str | None = None
    curriculum: Literal["shuffle", "ramp"] | None = None
    reward_timeout: float = DEFAULT_REWARD_TIMEOUT_S
    steps: int = 100
    seed: int = 0
    out: str = "runs/zero"
    checkpoint_every: int = 50
    keep_checkpoints: int = 2
    reflection_phrases: list[str] = field(default_factory=lambda: list(DEFAULT_REFLECTION_PHRASES))
    log_tensorboard: bool = True
    threads: int = 0
    grpo: GRPOConfig = field(default_factory=GRPOConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    eval: PeriodicEvalConfig = field(default_factory=PeriodicEvalConfig)
    lora: LoRAConfig = field(default_factory=LoRAConfig)
    environment: str = "none"
    environment_modules: list[str] = field(default_factory=list)
    tools: ToolConfig = field(default_factory=ToolConfig)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)

    # what a resumed run may change (each change is logged in config.changes.jsonl)
    on_resume: ClassVar = ("steps", "checkpoint_every", "keep_checkpoints", "log_tensorboard", "threads", "device",
                           "reward_timeout")
    ranges: ClassVar = {"train_size": AT_LEAST_1, "steps": AT_LEAST_1, "checkpoint_every": NON_NEGATIVE,
                        "keep_checkpoints": AT_LEAST_1, "threads": NON_NEGATIVE,
                        "reward_timeout": NON_NEGATIVE}

    def resolved(self) -> "ZeroConfig":
        """A copy whose options left null take the values of the run's task (``TASKS[data]``, else
        ``MATH_TASK``); the trainer runs this copy and records it in ``config.json``.

        Example: ``ZeroConfig(data="synthetic").resolved().rewards == {"accuracy_math": 1.0, "format": 0.5}``
        """
        task = TASKS.get(self.data, MATH_TASK)
        return replace(self,
                       rewards=dict(task.rewards) if self.rewards is None else self.rewards,
                       accuracy_reward=self.accuracy_reward or task.accuracy_reward,
                       curriculum=self.curriculum or task.curriculum,
                       rollout=replace(self.rollout, max_new_tokens=self.rollout.max_new_tokens or task.max_new_tokens),
                       eval=replace(self.eval, data=self.eval.data or task.eval_data,
                                    max_new_tokens=self.eval.max_new_tokens or task.max_new_tokens))

    def check(self, prefix: str = "") -> None:
        """Cross-field rules: reward names exist, distributed options fit together."""
        check_device(self.device, f"{prefix}device")
        import_modules(self.reward_modules, f"{prefix}reward_modules")
        check_reward_names(self.resolved(), prefix)
        check_engine(self.rollout.engine, self.rollout.endpoint, f"{prefix}rollout.", trains=True)
        check_environment_options(self.environment, self.environment_modules, self.rollout.engine, prefix)
        if self.eval.environment is not None:
            check_environment(self.eval.environment, f"{prefix}eval.environment")
        distributed = self.distributed
        if self.rollout.engine != "torch" and distributed.backend == "ray":
            raise ConfigError(f"{prefix}rollout.engine: {self.rollout.engine} samples with distributed.backend none "
                              "(the Ray actors run the torch engine)")
        if distributed.backend == "ray":
            require_ray()
        if distributed.strategy == "fsdp" and (distributed.backend == "ray" or self.lora.enabled):
            raise ConfigError(f"{prefix}distributed.strategy: fsdp runs with distributed.backend none and "
                              "without LoRA (not implemented together)")
        if distributed.backend == "ray" and self.lora.enabled:
            raise ConfigError(f"{prefix}lora.r: LoRA runs with distributed.backend none (the Ray actors "
                              "take full weights; merged LoRA pushes are not implemented)")
        if distributed.max_weight_lag and distributed.backend != "ray":
            raise ConfigError(f"{prefix}distributed.max_weight_lag: {distributed.max_weight_lag}: off-policy lag "
                              "needs distributed.backend=ray")
        if distributed.max_weight_lag and self.grpo.dynamic_sampling:
            raise ConfigError(f"{prefix}distributed.max_weight_lag: not supported with grpo.dynamic_sampling")
        if self.rollout.async_steps and distributed.backend != "none":
            raise ConfigError(f"{prefix}rollout.async_steps: needs distributed.backend=none (with ray, "
                              "distributed.max_weight_lag samples ahead)")
        if self.rollout.async_steps and self.environment != "none":
            raise ConfigError(f"{prefix}rollout.async_steps: tool episodes (environment={self.environment}) run "
                              "synchronously")
        if self.rollout.async_steps and self.grpo.dynamic_sampling:
            raise ConfigError(f"{prefix}rollout.async_steps: not supported with grpo.dynamic_sampling (a refill "
                              "round would wait for the weights being trained)")
        if self.rewards == {}:
            raise ConfigError(f"{prefix}rewards: no reward given (e.g. rewards: {{accuracy_math: 1.0}})")
        for name, rm in self.reward_models.items():
            if not rm.path:
                raise ConfigError(f"{prefix}reward_models.{name}.path: no reward model path given")


def check_reward_names(cfg: ZeroConfig, prefix: str = "") -> None:
    """Every reward named in ``rewards``, ``rewards_by_kind`` and ``accuracy_reward`` is registered
    (or is one of the run's ``reward_models``)."""
    known = set(available_rewards()) | set(cfg.reward_models)
    named = [(f"rewards.{n}", n) for n in cfg.rewards] + [("accuracy_reward", cfg.accuracy_reward)]
    named += [(f"rewards_by_kind.{kind}.{n}", n) for kind, ws in cfg.rewards_by_kind.items() for n in ws]
    for key, name in named:
        if name not in known:
            raise ConfigError(f"{prefix}{key}: unknown reward {name!r} (known: {', '.join(sorted(known))}; "
                              "register your own in a module listed in reward_modules)")
