"""The SFT trainer: next-token loss on completion tokens only, with checkpoints and exact resumption.

Data handling lives in :mod:`r1kit.sft.data`; this module orchestrates: the step plan (epochs of
micro-batches, ``grad_accum`` per optimiser step), AdamW with a warm-up + decay schedule,
``metrics.jsonl`` every step, ``checkpoint-STEP`` folders (model, tokenizer, optimiser, scheduler,
RNG, step) written atomically, ``--resume`` from the newest one, and the final model in
``OUT/final``.
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from r1kit.config import ConfigError, validate
from r1kit.data.jsonl import DataError, append_jsonl, guarded_write, write_json_atomic
from r1kit.optim import adamw_with_schedule
from r1kit.runs import GracefulStop, RunDir
from r1kit.models import load_tokenizer, resolve_model_path
from r1kit.models.device import device_record, reset_peak_memory, resolve_device
from r1kit.models.policy import load_policy, plain_model, trainable_parameters
from r1kit.models.precision import compute_context
from r1kit.sft.config import SFTConfig
from r1kit.sft.data import build_examples, collate, epoch_micro_batches, fingerprint, load_sft_rows, masked_lm_loss
from r1kit.threads import apply as apply_threads

RECORDS = ["metrics.jsonl", "summary.json", "final"]
LOGS = ["metrics.jsonl"]  # cut back to the checkpoint's step on a resume


def step_plan(lengths: list[int], cfg: SFTConfig) -> list[tuple[int, list]]:
    """``(epoch, micro-batches)`` of every optimiser step: ``grad_accum`` micro-batches per step,
    steps never spanning two epochs; ``epochs`` epochs, or as many as ``max_steps`` needs."""
    plan: list[tuple[int, list]] = []
    epoch = 0
    while (cfg.max_steps > 0 and len(plan) < cfg.max_steps) or (cfg.max_steps <= 0 and epoch < cfg.epochs):
        micro = epoch_micro_batches(lengths, epoch, cfg.seed, cfg.batching, cfg.batch_size, cfg.max_length)
        plan += [(epoch, micro[i:i + cfg.grad_accum]) for i in range(0, len(micro), cfg.grad_accum)]
        epoch += 1
    return plan[: cfg.max_steps] if cfg.max_steps > 0 else plan


def _check_packing_support() -> None:
    """Packing relies on transformers building block-diagonal masks from position ids."""
    try:
        from transformers.masking_utils import find_packed_sequence_indices  # noqa: F401
    except ImportError:
        raise ConfigError("batching=pack needs a transformers version with packed-sequence masks "
                          "(masking_utils.find_packed_sequence_indices); use batching=bucket") from None


class SFTTrainer:
    """Runs a supervised fine-tuning job described by an :class:`SFTConfig`."""

    def __init__(self, cfg: SFTConfig, resume: bool = False, overwrite: bool = False, progress: bool = True):
        self.cfg, self.progress, self.out = cfg, progress, Path(cfg.out)
        validate(cfg)
        if not cfg.data:
            raise ConfigError("data: no training data given (--data FILE, hf:NAME or a datasets folder)")
        if cfg.batching == "pack":
            _check_packing_support()
        self.run = RunDir(cfg, RECORDS, "fine-tuning run", resume, overwrite)
        apply_threads(cfg.threads)
        self.model_path = resolve_model_path(cfg.model)
        self.tokenizer = load_tokenizer(cfg.model)
        rows = load_sft_rows(cfg.data, cfg.limit)
        self.examples, self.data_counts = build_examples(rows, self.tokenizer, cfg.max_length, cfg.add_eos,
                                                         source=cfg.data)
        if not self.examples:
            raise DataError(f"{cfg.data}: no example with a completion token to learn from "
                            f"({self.data_counts['rows']} rows)")
        self.data_hash = fingerprint(self.examples)
        self.plan = step_plan([len(ex) for ex in self.examples], cfg)
        self.total_steps = len(self.plan)
        self.step = 0
        # float32 master weights; dtype bfloat16 is the compute dtype (r1kit.models.precision)
        self.device = resolve_device(cfg.device)
        self.model = load_policy(self.model_path, cfg.model, self.run.checkpoint, cfg.lora, self.device)
        self.optimizer, self.scheduler = adamw_with_schedule(
            trainable_parameters(self.model), cfg.lr, cfg.weight_decay, self.total_steps, cfg.warmup_steps,
            cfg.schedule, cfg.min_lr_ratio)
        if self.run.checkpoint:
            self._restore()  # (refuses other data first)
            self.run.refuse_finished(self.total_steps)
        self.run.begin(self.step, LOGS)

    def _restore(self) -> None:
        state = self.run.restore(LOGS)
        if state.get("data_hash") != self.data_hash or state.get("total_steps") != self.total_steps:
            raise ConfigError(f"{self.run.checkpoint}: the data or the step plan changed since this checkpoint "
                              "(same data, epochs, max_steps, batching, batch_size and grad_accum needed to resume)")
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step = state["step"]

    def _save(self) -> Path:
        state = {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                 "data_hash": self.data_hash, "total_steps": self.total_steps}
        return self.run.save(self.step, self.model, self.tokenizer, state, self.cfg.keep_checkpoints)

    def _save_final(self) -> Path:
        final, tmp = self.out / "final", self.out / ".tmp-final"
        shutil.rmtree(tmp, ignore_errors=True)
        with guarded_write(final, tmp):
            plain_model(self.model).save_pretrained(tmp)  # LoRA: the adapters merged in
            self.tokenizer.save_pretrained(tmp)
            shutil.rmtree(final, ignore_errors=True)
            tmp.rename(final)
        return final

    def train_step(self, micro_batches: list) -> dict:
        """One optimiser step over ``micro_batches``; the loss is the mean over all their
        completion tokens. Returns the step's loss, gradient norm and token counts."""
        packed = self.cfg.batching == "pack"
        pad = self.tokenizer.pad_token_id
        reset_peak_memory(self.device)
        batches = [{k: v.to(self.device) if torch.is_tensor(v) else v for k, v in
                    collate(self.examples, rows, pad, packed).items()} for rows in micro_batches]
        n_targets = sum(int((b["labels"][:, 1:] != -100).sum()) for b in batches)
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for b in batches:
            inputs = {k: b[k] for k in ("input_ids", "position_ids", "attention_mask") if k in b}
            with compute_context(self.model, self.cfg.dtype):
                logits = self.model(**inputs, use_cache=False).logits
            loss_sum, _ = masked_lm_loss(logits.float(), b["labels"])
            (loss_sum / max(n_targets, 1)).backward()
            total += loss_sum.item()
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.model.eval()
        tokens = sum(b["n_tokens"] for b in batches)
        width = sum(b["input_ids"].numel() for b in batches)
        return {"loss": total / max(n_targets, 1), "grad_norm": norm.item(), "target_tokens": n_targets,
                "tokens": tokens, "padding_frac": 1 - tokens / width,
                "examples": sum(len(row) for rows in micro_batches for row in rows),
                **device_record(self.device, self.cfg.dtype)}

    def train(self) -> dict:
        """Run the remaining steps; returns the summary (also written to ``summary.json``). Ctrl-C
        stops after the current step with a checkpoint (:class:`r1kit.errors.Interrupted`)."""
        try:
            with GracefulStop() as stop:
                return self._train(stop)
        finally:
            self.run.close()

    def _train(self, stop: GracefulStop) -> dict:
        cfg, start = self.cfg, time.time()
        bar = tqdm(total=self.total_steps, initial=self.step, desc="SFT", disable=not self.progress, mininterval=1)
        while self.step < self.total_steps:
            t0 = time.time()
            epoch, micro = self.plan[self.step]
            metrics = self.train_step(micro)
            lr = self.scheduler.get_last_lr()[0]
            self.step += 1
            seconds = time.time() - t0
            row = {"step": self.step, "epoch": epoch, **metrics, "lr": lr, "step_seconds": seconds,
                   "tokens_per_s": metrics["tokens"] / max(seconds, 1e-9)}
            append_jsonl(self.out / "metrics.jsonl", row)
            bar.set_postfix(loss=f"{metrics['loss']:.3f}", epoch=f"{epoch + 1}/{self.plan[-1][0] + 1}", refresh=False)
            bar.update(1)
            if stop.checkpoint_due(self.step, self.total_steps, cfg.checkpoint_every):
                self._save()
            stop.stop_here(self.step, self.total_steps, self.out)
        bar.close()
        final = self._save_final()
        metrics = [json.loads(line) for line in (self.out / "metrics.jsonl").read_text().splitlines()] \
            if (self.out / "metrics.jsonl").exists() else []
        summary = {"model": cfg.model, "data": cfg.data, "final": str(final), "steps": self.step,
                   "epochs": (self.plan[-1][0] + 1) if self.plan else 0, **self.data_counts,
                   "target_tokens": sum(ex.n_targets for ex in self.examples),
                   "final_loss": metrics[-1]["loss"] if metrics else None,
                   "train_seconds": round(sum(m["step_seconds"] for m in metrics), 2),
                   "seconds_this_session": round(time.time() - start, 2)}
        write_json_atomic(self.out / "summary.json", summary)
        return summary


def run_sft(cfg: SFTConfig, resume: bool = False, overwrite: bool = False, progress: bool = True) -> dict:
    """Fine-tune as ``cfg`` says; returns the summary (the model is in ``cfg.out/final``)."""
    return SFTTrainer(cfg, resume=resume, overwrite=overwrite, progress=progress).train()
