"""The GRPO trainer (``r1kit zero``): sample groups, score them, optimise the clipped objective.

The pieces, each in its own module: the math in :mod:`r1kit.grpo.core`; where groups come from
(this process or Ray actors) in :mod:`r1kit.grpo.sources`; the optimisation step in
:mod:`r1kit.grpo.step`; the logged figures in :mod:`r1kit.grpo.metrics`; run directories,
checkpoints and the learning-rate schedule in :mod:`r1kit.runs`. This module wires them: set-up,
the loop (:meth:`GRPOTrainer._train`), periodic evaluation, checkpoints and exact resumption.

Under ``torchrun`` each rank trains on its share of the groups with gradients summed over the ranks
(``r1kit.distributed.ddp``); the single-process path is the same code.
"""
from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import torch
from tqdm.auto import tqdm

from r1kit import threads
from r1kit.config import ConfigError, validate
from r1kit.data import calc, countdown, synthetic
from r1kit.data.benchmarks import check_prompt_lengths, load_problems
from r1kit.data.jsonl import DataError, append_jsonl, guarded_write, write_json_atomic
from r1kit.distributed import ddp
from r1kit.distributed.strategy import STRATEGIES
from r1kit.eval.evaluate import eval_problems, run_eval
from r1kit.grpo.config import ZeroConfig
from r1kit.grpo.metrics import log_samples, step_metrics
from r1kit.grpo.sources import SOURCES, Scoring, prompt_stream
from r1kit.grpo.step import Models, StepStats, accumulate, frozen_logprobs, layout, optimiser_step
from r1kit.models import load_tokenizer, model_context, resolve_model_path
from r1kit.models.device import device_record, reset_peak_memory, resolve_device
from r1kit.models.policy import load_policy, reference_for, trainable_parameters
from r1kit.optim import adamw_with_schedule
from r1kit.perf import STEP_TIMER
from r1kit.rewards import RewardStats
from r1kit.rewards.reward_model import register_reward_models
from r1kit.runs import GracefulStop, RunDir
from r1kit.threads import apply as apply_threads

RECORDS = ["metrics.jsonl", "eval.jsonl", "summary.json"]
LOGS = ["metrics.jsonl", "eval.jsonl", "samples.jsonl"]  # cut back to the checkpoint's step on a resume


def train_problems(cfg: ZeroConfig) -> list[dict]:
    """The training prompts: r1kit's synthetic tasks (drawn for ``train_size``) or a data file."""
    if cfg.data == "synthetic":
        return synthetic.train_set(cfg.train_size, seed=synthetic.TRAIN_SEED + cfg.seed)
    if cfg.data == "synthetic_code":
        return synthetic.code_train_set(cfg.train_size, seed=synthetic.TRAIN_SEED + cfg.seed)
    if cfg.data == "synthetic_calc":
        return calc.train_set(cfg.train_size, seed=calc.TRAIN_SEED + cfg.seed)
    if cfg.data == "countdown":
        return countdown.train_set()
    problems = load_problems(cfg.data, cfg.data_dir)
    if not problems:
        raise DataError(f"{cfg.data}: no training problems")
    return problems


class GRPOTrainer:
    """Runs an R1-Zero GRPO job described by a ``ZeroConfig``."""

    def __init__(self, cfg: ZeroConfig, resume: bool = False, progress: bool = True, overwrite: bool = False):
        validate(cfg)
        cfg = cfg.resolved()  # the task's rewards, curriculum and budgets where cfg leaves them null
        self.cfg, self.progress, self.out = cfg, progress, Path(cfg.out)
        self.device = resolve_device(cfg.device)
        ddp.init_from_env(self.device.type, cfg.distributed.collective_timeout)
        self.main = ddp.is_main()
        if cfg.grpo.prompts_per_step < ddp.world_size():
            raise ConfigError(f"grpo.prompts_per_step: {cfg.grpo.prompts_per_step} groups cannot be shared by "
                              f"{ddp.world_size()} ranks")
        if ddp.world_size() > 1 and cfg.rollout.async_steps:
            raise ConfigError("rollout.async_steps: not under torchrun (one process samples ahead)")
        if ddp.world_size() > 1 and cfg.grpo.dynamic_sampling and cfg.distributed.backend != "ray":
            raise ConfigError("grpo.dynamic_sampling: under torchrun it needs distributed.backend=ray "
                              "(rank 0 then samples for all ranks)")
        self.run = RunDir(cfg, RECORDS, "run", resume, overwrite, main=self.main)
        self.run.refuse_finished(cfg.steps)
        self._register_reward_models()
        apply_threads(cfg.threads)
        self.tokenizer = load_tokenizer(cfg.model)
        self.model_path = resolve_model_path(cfg.model)
        self.stream = prompt_stream(cfg, train_problems(cfg))
        check_prompt_lengths(self.stream.problems, self.tokenizer, model_context(self.model_path), cfg.data)
        self.eval_cfg = cfg.eval.resolved(cfg.template, cfg.seed, cfg.data_dir, cfg.reflection_phrases, cfg.environment)
        if self.eval_cfg.environment == cfg.environment:  # the run's episodes, with the run's tool options
            self.eval_cfg = replace(self.eval_cfg, tools=cfg.tools)
        self.eval_problems = eval_problems(self.eval_cfg) if cfg.eval.every else []
        self.stats = RewardStats()
        self.step = 0
        self._source_state: dict = {}  # a resumed checkpoint's (the samples its run took ahead)
        ddp.barrier()
        self.models = self._load_models(self.run.checkpoint)
        self.policy = self.models.policy
        if self.run.checkpoint:
            self._restore()
        self.run.begin(self.step, LOGS)
        self.writer = self._tensorboard() if self.main else None
        self.scoring = Scoring(cfg, self.tokenizer, self.stats)
        self.source = SOURCES[cfg.distributed.backend](cfg, self.tokenizer, self.stream, self.scoring, self.sampler)
        self.source.push_weights(self.policy, self.step)
        self.source.load_state(self._source_state)

    @property
    def reference(self) -> torch.nn.Module | None:
        return self.models.reference

    # ---- setup -------------------------------------------------------------------------------
    def _register_reward_models(self) -> None:
        for name, rm in self.cfg.reward_models.items():
            if not Path(rm.path).expanduser().exists() and rm.path.startswith((".", "/", "~")):
                raise ConfigError(f"reward_models.{name}.path: {rm.path} not found")
        try:
            register_reward_models(self.cfg.reward_models)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None

    def _load_models(self, start: Path | None) -> Models:
        cfg = self.cfg
        strategy = STRATEGIES[cfg.distributed.strategy]()
        policy = load_policy(self.model_path, cfg.model, start, cfg.lora, self.device)
        reference = reference_for(policy, self.model_path, cfg.lora, cfg.dtype, self.device) if cfg.grpo.beta > 0 else None
        # float32 master weights; dtype bfloat16 is the compute dtype (r1kit.models.precision). The
        # sampling copy (LoRA: adapters merged; fsdp: gathered) is made before any sharding
        self.sampler = strategy.sampling_copy(policy, cfg.dtype)
        for model in {id(m): m for m in (policy, reference) if m is not None}.values():
            strategy.shard(model)
        # the cosine reaches its floor after the last optimiser step
        optimizer, scheduler = adamw_with_schedule(trainable_parameters(policy), cfg.optim.lr, cfg.optim.weight_decay,
                                                   cfg.steps * cfg.grpo.mu + 1, cfg.optim.warmup_steps, cfg.optim.schedule, 0.1)
        return Models(policy, reference, optimizer, scheduler, strategy)

    def _tensorboard(self):
        if not self.cfg.log_tensorboard:
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except Exception:  # tensorboard not installed: metrics.jsonl is the record
            return None
        return SummaryWriter(str(self.out / "tensorboard"))

    def _restore(self) -> None:
        state = self.run.restore(LOGS)
        self.models.strategy.load_extra(self.models.optimizer, self.run.checkpoint, state)
        self.models.scheduler.load_state_dict(state["scheduler"])
        self.stream.position = state["data_position"]
        self.step = state["step"]
        self._source_state = state.get("source", {})

    def _save(self) -> None:
        """``checkpoint-STEP``, written by rank 0. Under fsdp every rank first gathers the full
        weights and stages its optimiser shard, which rank 0 moves into the checkpoint."""
        strategy, step = self.models.strategy, self.step
        every_rank = strategy.saves_on_every_rank()
        if not (self.main or every_rank):
            return
        model = _FullWeights(self.sampler.model, strategy.full_state_dict(self.policy)) if every_rank else self.policy
        staging = self.out / f".tmp-rank{ddp.rank()}-step{step}"
        staging.mkdir(parents=True, exist_ok=True)
        # prompts taken for a prefetched (not yet trained) round are taken again after a resume
        state = {**strategy.save_extra(self.models.optimizer, staging),
                 "scheduler": self.models.scheduler.state_dict(),
                 "data_position": self.stream.position - self.source.prompts_ahead()}
        source_state = self.source.state()  # (only what a source takes ahead: a default run saves as before)
        if source_state:
            state["source"] = source_state
        if every_rank:
            ddp.barrier()
        if self.main:
            stages = [self.out / f".tmp-rank{r}-step{step}" for r in range(ddp.world_size() if every_rank else 1)]
            with guarded_write(self.out, *stages):  # the staging folders go, whatever happens
                self.run.save(step, model, self.tokenizer, state, self.cfg.keep_checkpoints,
                              [f for folder in stages for f in folder.glob("*")])
                for folder in stages:
                    folder.rmdir()
        if every_rank:
            ddp.barrier()

    # ---- logging and evaluation --------------------------------------------------------------
    def _log(self, batch, opt: dict, times: dict, bar) -> None:
        """Rank 0's record of a finished step: metrics.jsonl (+ TensorBoard), samples.jsonl, progress bar."""
        cfg = self.cfg
        names = list(dict.fromkeys([*self.scoring.default_weights,
                                    *(n for ws in cfg.rewards_by_kind.values() for n in ws)]))
        m = step_metrics(cfg, self.step, batch, opt, times, names, self.source.counters(),
                         self.models.scheduler.get_last_lr()[0], self.stats.total())
        append_jsonl(self.out / "metrics.jsonl", m)
        if self.writer:
            for key, value in m.items():
                if key != "step" and isinstance(value, (int, float)):
                    self.writer.add_scalar(key, value, m["step"])
        if self.source.sample_log:
            log_samples(self.out / "samples.jsonl", self.step, batch,
                        batch.train if ddp.world_size() == 1 else batch.sampled)
        bar.set_postfix(reward=f"{m['reward/mean']:.2f}", acc=f"{m.get('accuracy', float('nan')):.2f}",
                        len=f"{m['response_length/mean']:.0f}", refresh=False)
        bar.update(1)  # (after the figures: tick N shows step N's)

    def run_eval(self) -> dict:
        """The periodic evaluation of the sampling weights; appended to ``eval.jsonl``."""
        row = {"step": self.step, **run_eval(self.sampler.model, self.tokenizer, self.eval_cfg,
                                             problems=self.eval_problems, progress=False)}
        append_jsonl(self.out / "eval.jsonl", row)
        return row

    # ---- the loop ----------------------------------------------------------------------------
    def train(self) -> dict:
        """Run the remaining steps; returns the summary (also written to ``summary.json``). Ctrl-C
        stops after the current step with a checkpoint (:class:`r1kit.errors.Interrupted`)."""
        try:
            with GracefulStop() as stop:
                return self._train(stop)
        finally:
            self.source.close()
            self.run.close()

    def train_step(self):
        """One GRPO step, phase by phase; returns the sampled batch, the optimiser's figures and the
        step's timings (``seconds/<phase>`` from the step timer)."""
        cfg, models = self.cfg, self.models
        reset_peak_memory(self.device)
        STEP_TIMER.split()  # the split covers this step only (not sections timed between steps)
        t0 = time.time()
        batch = self.source.collect(self.step)  # G completions per prompt, scored ("sampling", "rewards")
        t1 = time.time()
        threads.reset()
        with STEP_TIMER("layout"):  # micro-batches, group-normalised advantages, global normalisers
            lb = layout(batch.train, models, cfg, self.tokenizer.pad_token_id)
        frozen_logprobs(lb, batch.train, models, cfg, self.step)  # pi_old, pi_ref ("logprobs")
        stats = StepStats()
        models.policy.train()
        for _ in range(cfg.grpo.mu):  # mu optimiser steps on the same samples, all against pi_old
            stats.loss.append(accumulate(lb, models, cfg, stats))  # "forward", "backward"
            stats.grad_norm.append(optimiser_step(models, cfg))    # "optimiser"
        models.policy.eval()
        with STEP_TIMER("weight_sync"):  # the samplers get the new weights before the next collect
            self.sampler.refresh()
            self.step += 1
            self.source.push_weights(self.policy, self.step)
        t2 = time.time()
        opt = {**stats.summary(), **device_record(self.device, cfg.dtype)}
        split = {f"seconds/{name}": round(sec, 4) for name, sec in STEP_TIMER.split().items()}
        return batch, opt, {"rollout_seconds": t1 - t0, "train_seconds": t2 - t1, "step_seconds": t2 - t0, **split}

    def _train(self, stop: GracefulStop) -> dict:
        cfg = self.cfg
        started = time.time()
        last_eval = None
        if cfg.eval.every and self.step == 0 and self.main:
            if self.progress:
                print(f"step 0: evaluating the model on {len(self.eval_problems)} problems x {cfg.eval.k} samples",
                      flush=True)
            last_eval = self.run_eval()
        bar = tqdm(total=cfg.steps, initial=self.step, desc="GRPO", disable=not (self.progress and self.main),
                   mininterval=1)
        while self.step < cfg.steps:
            batch, opt, times = self.train_step()
            if self.main:
                self._log(batch, opt, times, bar)
                if cfg.eval.every and (self.step % cfg.eval.every == 0 or self.step == cfg.steps):
                    last_eval = self.run_eval()
                    bar.write(eval_line(self.step, last_eval, cfg.eval.k))
            if stop.checkpoint_due(self.step, cfg.steps, cfg.checkpoint_every):
                self._save()
            stop.stop_here(self.step, cfg.steps, self.out)
        bar.close()
        ddp.barrier()
        if self.writer:
            self.writer.close()
        summary = {"steps": self.step, "final_eval": last_eval, "reward_failures": self.stats.as_dict(),
                   "seconds_this_session": round(time.time() - started, 1)}
        if self.main:
            write_json_atomic(self.out / "summary.json", summary)
        return summary


class _FullWeights:
    """An unsharded model's ``save_pretrained`` with the gathered full weights (float32) of a
    sharded one."""

    def __init__(self, template, state: dict):
        self.template, self.state = template, state

    def save_pretrained(self, folder) -> None:
        self.template.save_pretrained(folder, state_dict=self.state)


def eval_line(step: int, row: dict, k: int) -> str:
    """One line of a periodic evaluation for the progress output."""
    cons = row.get(f"cons@{k}")
    return (f"step {step}: eval pass@1 {row['pass@1']:.3f} " + (f"cons@{k} {cons:.3f} " if cons is not None else "")
            + f"length {row['mean_length']:.1f}")
