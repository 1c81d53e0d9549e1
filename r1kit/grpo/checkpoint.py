"""Checkpoints: an HF folder that ``from_pretrained`` opens plus the trainer state to resume exactly.

``checkpoint-STEP/`` holds the model (safetensors + config), the tokenizer and ``trainer_state.pt``
(optimizer, scheduler, RNG states, data position). It is written to a temporary folder and renamed,
so a crash never leaves a half-written checkpoint that ``--resume`` would pick up.
"""
from __future__ import annotations

import json
import random
import re
import shutil
from pathlib import Path

import torch

STATE_FILE = "trainer_state.pt"
# wall-clock fields of metrics.jsonl: they differ between two runs of the same seed
TIMING_KEYS = ("step_seconds", "rollout_seconds", "train_seconds", "tokens_per_s")


def checkpoint_dirs(run_dir: Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    found = []
    for path in Path(run_dir).glob("checkpoint-*"):
        match = re.fullmatch(r"checkpoint-(\d+)", path.name)
        if match and (path / STATE_FILE).exists():
            found.append((int(match.group(1)), path))
    return [p for _, p in sorted(found)]


def latest_checkpoint(run_dir: Path) -> Path | None:
    dirs = checkpoint_dirs(run_dir)
    return dirs[-1] if dirs else None


def rng_state() -> dict:
    return {"python": random.getstate(), "torch": torch.get_rng_state()}


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])


def save_checkpoint(run_dir: Path, step: int, model, tokenizer, trainer_state: dict, keep: int) -> Path:
    """Write ``checkpoint-STEP`` atomically and prune all but the newest ``keep``."""
    final = Path(run_dir) / f"checkpoint-{step}"
    tmp = Path(run_dir) / f".tmp-checkpoint-{step}"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    torch.save(trainer_state, tmp / STATE_FILE)
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    for old in checkpoint_dirs(run_dir)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_trainer_state(checkpoint: Path) -> dict:
    return torch.load(Path(checkpoint) / STATE_FILE, weights_only=False)


def truncate_jsonl_after(path: Path, step: int) -> None:
    """Drop lines logged after ``step`` (and a torn last line), so a resumed run appends cleanly."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if row.get("step", 0) <= step:
            kept.append(line)
    path.write_text("".join(line + "\n" for line in kept))


def check_fresh_run_dir(run_dir: Path, records: list[str], resume: bool, overwrite: bool,
                        command: str = "run") -> None:
    """A new run never appends to, or silently replaces, an earlier run's records.

    ``records`` are the names (files or folders) a run writes in ``run_dir``; ``checkpoint-*``
    folders always count. If any exists and neither ``resume`` nor ``overwrite`` is set, raise a
    ``ConfigError`` naming them; with ``overwrite`` they are deleted.
    """
    from r1kit.config import ConfigError

    run_dir = Path(run_dir)
    earlier = [name for name in records if (run_dir / name).exists()]
    earlier += [p.name for p in run_dir.glob("checkpoint-*")]
    if resume or not earlier:
        return
    if not overwrite:
        raise ConfigError(f"{run_dir} already holds a {command} ({', '.join(sorted(earlier))}); "
                          "pass --resume to continue it, --overwrite to replace it, or another --out")
    for name in earlier:
        path = run_dir / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()
