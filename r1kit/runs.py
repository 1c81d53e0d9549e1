"""Run directories, shared by every trainer (``zero``, ``sft``, ``sample``, ``distill``, the pipeline).

* **Output folders** are checked before any model loads (:func:`check_out_dir`): not a file,
  writable, and either free of an earlier run's records or explicitly resumed / overwritten
  (:func:`check_fresh_run_dir`).
* **The record of a run**: ``config.json`` is written when a run starts. ``--resume`` reloads it
  (:func:`config_to_run`, :func:`resume_changes`): options given again must equal the recorded ones, except the keys a
  command declares safe to change (``steps``, evaluation cadence, logging...); each accepted change
  is appended to ``config.changes.jsonl``.
* **Checkpoints**: ``checkpoint-STEP/`` holds the model (safetensors + config), the tokenizer and ``trainer_state.pt``
(optimizer, scheduler, RNG states, data position), and last ``manifest.json`` (every file's size and
sha256, the model, the run's options). It is written to a temporary folder and renamed, so a crash
never leaves a half-written checkpoint; ``--resume`` takes the newest checkpoint that matches its
manifest (:func:`resume_point`) and refuses one of another model or other options.
* **One writer**: :func:`lock_run` takes an ``flock`` on ``RUN/.r1kit.lock``; a second process is
refused with the holder's pid and host. A failed write (full disk, read-only file system) removes
its temporary files and raises ``WriteError`` (``r1kit.data.jsonl.guarded_write``).
* **Stopping**: :class:`GracefulStop` turns the first Ctrl-C or SIGTERM into a checkpoint at the
end of the step; ``--resume`` of a finished run is :class:`RunFinished` (nothing changes).
"""
from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import random
import re
import shutil
import signal
import socket
import threading
import time
import weakref
from pathlib import Path

import torch

from r1kit.config import CONFIG_FILE, ConfigError, recorded_config, to_dict
from r1kit.errors import Interrupted, RunFinished
from r1kit.data.jsonl import append_jsonl, file_sha256, guarded_write, write_json_atomic

STATE_FILE = "trainer_state.pt"
MANIFEST_FILE = "manifest.json"
LOCK_FILE = ".r1kit.lock"
# wall-clock, memory and load fields of metrics.jsonl: they differ between two runs of the same seed
TIMING_KEYS = ("step_seconds", "rollout_seconds", "train_seconds", "tokens_per_s", "peak_memory_mb", "threads")
# the sampler/trainer log-prob gap: on the same weights it is kernel rounding, which moves in the
# last bits when the thread governor changes the thread count (r1kit.threads)
ROUNDING_KEYS = ("rollout/logprob_diff_mean", "rollout/logprob_diff_max", "rollout/is_ratio_mean",
                 "rollout/is_ratio_max")


def is_timing_key(key: str) -> bool:
    """A metrics.jsonl field that varies between two runs of the same seed (``TIMING_KEYS``, the
    step's time split, ``seconds/<section>``, and the rounding-level ``ROUNDING_KEYS``)."""
    return key in TIMING_KEYS or key in ROUNDING_KEYS or key.startswith("seconds/")


def checkpoint_dirs(run_dir: Path) -> list[Path]:
    """Checkpoint folders of a run (``checkpoint-STEP`` with a trainer state), oldest first; not
    verified (see :func:`latest_checkpoint`)."""
    found = []
    for path in Path(run_dir).glob("checkpoint-*"):
        match = re.fullmatch(r"checkpoint-(\d+)", path.name)
        if match and (path / STATE_FILE).exists():
            found.append((int(match.group(1)), path))
    return [p for _, p in sorted(found)]


def write_manifest(folder: Path, model: str, config: dict | None) -> None:
    """``manifest.json``, written last into a checkpoint: every file's size and sha256, the model
    the run trains (``model``) and the run's options (``config``)."""
    files = {str(p.relative_to(folder)): {"size": p.stat().st_size, "sha256": file_sha256(p)}
             for p in sorted(folder.rglob("*")) if p.is_file()}
    (folder / MANIFEST_FILE).write_text(json.dumps({"model": model, "config": config, "files": files}, indent=1))


def read_manifest(checkpoint: Path) -> dict:
    """The checkpoint's manifest; ``{}`` for one written before r1kit wrote manifests (a checkpoint
    folder appears whole, renamed from its temporary folder, so it has one unless it is that old)."""
    path = Path(checkpoint) / MANIFEST_FILE
    return json.loads(path.read_text()) if path.exists() else {}


def checkpoint_damage(checkpoint: Path) -> str | None:
    """What is wrong with a checkpoint's files against its manifest (None: intact, or too old to
    have a manifest: then it is taken as it is, and said so)."""
    try:
        manifest = read_manifest(checkpoint)
        if not manifest:
            print(f"{checkpoint}: written by an earlier r1kit without {MANIFEST_FILE}; not verified", flush=True)
            return None
        files = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"unreadable {MANIFEST_FILE} ({exc})"
    for name, want in files.items():
        path = Path(checkpoint) / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != want["size"]:
            return f"{name} has {path.stat().st_size} bytes, the manifest says {want['size']}"
        if file_sha256(path) != want["sha256"]:
            return f"{name} differs from the manifest (sha256)"
    return None


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest checkpoint whose files match its manifest; each newer damaged one is named with
    what is wrong with it."""
    for checkpoint in reversed(checkpoint_dirs(run_dir)):
        damage = checkpoint_damage(checkpoint)
        if damage is None:
            return checkpoint
        print(f"{checkpoint}: damaged, skipped: {damage}", flush=True)
    return None


def resume_point(run_dir: Path, config) -> Path | None:
    """The checkpoint ``--resume`` continues from: the newest intact one (:func:`latest_checkpoint`),
    which must have been trained on ``config.model`` with ``config``'s options (the
    :func:`resumable_keys` aside). A ConfigError names the difference; checkpoints that are all
    damaged are one too."""
    checkpoint = latest_checkpoint(run_dir)
    if checkpoint is None:
        if checkpoint_dirs(run_dir):
            raise ConfigError(f"--resume: no intact checkpoint in {run_dir} (each is named above); "
                              "pass --overwrite to start again")
        return None
    manifest = read_manifest(checkpoint)
    if manifest.get("model") not in (None, config.model):
        raise ConfigError(f"--resume: {checkpoint} holds a checkpoint of model {manifest.get('model')!r}, "
                          f"this run trains {config.model!r}; remove it or use another --out")
    recorded = manifest.get("config")
    changes = changed_keys(recorded, to_dict(config)) if recorded is not None else {}
    safe = resumable_keys(type(config))
    changes = {k: v for k, v in changes.items() if k != "out" and not _is_safe(k, safe)}
    if changes:
        detail = "; ".join(f"{k}: {old!r} there, {new!r} now" for k, (old, new) in changes.items())
        raise ConfigError(f"--resume: {checkpoint} was trained with other options than {Path(run_dir) / CONFIG_FILE} "
                          f"and the command line give ({detail}); restore them or use another --out")
    if checkpoint != checkpoint_dirs(run_dir)[-1]:
        print(f"--resume: continuing from {checkpoint.name}, the newest intact checkpoint", flush=True)
    return checkpoint


def rng_state() -> dict:
    state = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():  # dropout (LoRA) on a GPU draws from the CUDA generators
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(run_dir: Path, step: int, model, tokenizer, trainer_state: dict, keep: int,
                    extra_files: list[Path] = (), config=None) -> Path:
    """Write ``checkpoint-STEP`` atomically (``extra_files``, e.g. other ranks' optimiser shards,
    moved into it before it appears; the manifest of ``config``'s run written last) and prune all
    but the newest ``keep``. A failed write leaves no temporary folder and raises ``WriteError``."""
    final = Path(run_dir) / f"checkpoint-{step}"
    tmp = Path(run_dir) / f".tmp-checkpoint-{step}"
    shutil.rmtree(tmp, ignore_errors=True)
    with guarded_write(final, tmp):
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        torch.save(trainer_state, tmp / STATE_FILE)
        for path in extra_files:
            shutil.move(str(path), str(tmp / Path(path).name))
        write_manifest(tmp, getattr(config, "model", None), to_dict(config) if config is not None else None)
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
    for old in checkpoint_dirs(run_dir)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_trainer_state(checkpoint: Path) -> dict:
    # on the CPU: the optimiser's load_state_dict moves its state to the parameters' device
    return torch.load(Path(checkpoint) / STATE_FILE, weights_only=False, map_location="cpu")


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
    tmp = path.with_name(path.name + ".tmp")
    with guarded_write(path, tmp):
        tmp.write_text("".join(line + "\n" for line in kept))
        tmp.replace(path)


def check_fresh_run_dir(run_dir: Path, records: list[str], resume: bool, overwrite: bool,
                        command: str = "run", resumable: bool = True) -> None:
    """A new run never appends to, or silently replaces, an earlier run's records.

    ``records`` are the names (files or folders) a run writes in ``run_dir``; ``checkpoint-*``
    folders always count. If any exists and neither ``resume`` nor ``overwrite`` is set, raise a
    ``ConfigError`` naming them; with ``overwrite`` they are deleted.
    """
    run_dir = check_out_dir(run_dir)
    earlier = [name for name in records if (run_dir / name).exists()]
    earlier += [p.name for p in run_dir.glob("checkpoint-*")]
    if resume or not earlier:
        return
    if not overwrite:
        how = "pass --resume to continue it, --overwrite to replace it" if resumable else "pass --overwrite to replace it"
        article = "an" if command[0] in "aeiou" else "a"
        raise ConfigError(f"{run_dir} already holds {article} {command} ({', '.join(sorted(earlier))}); "
                          f"{how}, or give another --out")
    for name in earlier:
        path = run_dir / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()


def check_out_dir(path: str | Path, what: str = "--out") -> Path:
    """``path`` can hold a command's outputs: a folder (or one that can be made) where this process
    can write. ``ConfigError`` naming ``what`` and the path otherwise. Called before any model
    loads; leaves nothing behind (folders it made to find out are removed again)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{what} {path}: is a file, not a folder")
    missing = []
    for parent in [path, *path.parents]:
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"{what} {path}: {parent} is a file, not a folder")
            break
        missing.append(parent)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".r1kit-write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"{what} {path}: cannot write there ({exc.strerror or exc})") from None
    finally:
        for folder in missing:  # innermost first
            try:
                folder.rmdir()
            except OSError:
                pass
    return path


class RunLocked(ConfigError):
    """Another live process writes to the run folder."""


def lock_run(run_dir: str | Path):
    """Take the run folder's lock (an exclusive ``flock`` on ``run_dir/.r1kit.lock``, released when
    the process ends or the returned file is closed) and remove the temporary folders a killed
    writer left. :class:`RunLocked` with the holder's pid and host if another process holds it; a
    second lock by this same process is granted (one process writes its runs one at a time). A run
    that fails before writing anything leaves nothing: the lock file, and the folder if the lock
    made it, go again."""
    run_dir = check_out_dir(run_dir)
    path = run_dir / LOCK_FILE
    made = [p for p in (run_dir, path) if not p.exists()]
    run_dir.mkdir(parents=True, exist_ok=True)
    while True:
        # held read-only (a file open for writing would keep the file system from being remounted)
        handle = os.fdopen(os.open(path, os.O_RDONLY | os.O_CREAT, 0o644), "r", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = handle.read().strip() or "unknown"
            handle.close()
            if holder.split(" ")[0] == f"pid={os.getpid()}":
                return None
            raise RunLocked(f"{run_dir} is in use by another r1kit process ({holder}); wait for it to finish, "
                            "stop it, or use another --out") from None
        if path.exists() and os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino:
            break  # (not a lock file that its holder removed meanwhile)
        handle.close()
    path.write_text(f"pid={os.getpid()} host={socket.gethostname()} since={time.strftime('%Y-%m-%dT%H:%M:%S')}\n")
    for leftover in run_dir.glob(".tmp-*"):
        shutil.rmtree(leftover, ignore_errors=True) if leftover.is_dir() else leftover.unlink(missing_ok=True)
    weakref.finalize(handle, _unmake_if_unused, run_dir, made)
    return handle


def _unmake_if_unused(run_dir: Path, made: list[Path]) -> None:
    """Remove what :func:`lock_run` made (``made``: the folder, the lock file) if nothing else was written."""
    try:
        if [p.name for p in run_dir.iterdir()] == [LOCK_FILE]:
            for path in reversed(made):  # the lock file, then the folder
                path.unlink() if path.name == LOCK_FILE else path.rmdir()
    except OSError:  # (gone already, or written meanwhile)
        pass


def check_not_finished(run_dir: str | Path, steps: int) -> None:
    """Raise :class:`RunFinished` if ``run_dir``'s ``summary.json`` records ``steps`` steps or more."""
    path = Path(run_dir) / "summary.json"
    try:
        done = json.loads(path.read_text()).get("steps", 0)
    except (OSError, ValueError, AttributeError):
        return
    if isinstance(done, int) and done >= steps:
        raise RunFinished(f"{run_dir} already finished ({done} of {steps} steps, {path}); nothing to do. "
                          f"To train further, pass steps=N (more than {done}) with --resume")


CHANGES_FILE = "config.changes.jsonl"


def _flatten(tree: dict, prefix: str = "") -> dict:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (an empty mapping is a value of its own)."""
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def changed_keys(before: dict, after: dict) -> dict[str, tuple]:
    """Dotted keys whose values differ between two config dicts: ``key -> (before, after)``."""
    a, b = _flatten(before), _flatten(after)
    return {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}


def _is_safe(key: str, safe: tuple[str, ...]) -> bool:
    return any(key == s or key.startswith(s + ".") for s in safe)


def resumable_keys(cls, prefix: str = "") -> tuple[str, ...]:
    """The dotted keys a resumed run of ``cls`` may change: each config class declares its own in
    ``on_resume`` beside ``ranges`` (inherited ones included), nested sections under their names."""
    keys = [f"{prefix}{k}" for klass in reversed(cls.__mro__) for k in vars(klass).get("on_resume", ())]
    default = cls()
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(section := getattr(default, f.name)):
            keys += resumable_keys(type(section), f"{prefix}{f.name}.")
    return tuple(dict.fromkeys(keys))


def resume_changes(run_dir: str | Path, config, command: str) -> dict[str, tuple]:
    """How ``config`` differs from the one recorded in ``run_dir`` (``key -> (old, new)``). A
    changed key outside :func:`resumable_keys` is a ConfigError naming it, since the record of how
    the run was trained would be lost; ``out`` may always differ (a moved folder)."""
    recorded = recorded_config(type(config), run_dir)
    if recorded is None:
        return {}
    safe = resumable_keys(type(config))
    changes = changed_keys(to_dict(recorded), to_dict(config))
    changes.pop("out", None)
    refused = [k for k in changes if not _is_safe(k, safe)]
    if refused:
        detail = "; ".join(f"{k}: {changes[k][0]!r} -> {changes[k][1]!r}" for k in refused)
        raise ConfigError(f"--resume: {run_dir} was run with other options ({detail}). A resumed {command} "
                          f"keeps its recorded config ({Path(run_dir) / CONFIG_FILE}); only "
                          f"{', '.join(safe)} may change. Use another --out to run with other options.")
    return changes


def record_changes(run_dir: str | Path, changes: dict[str, tuple], step: int) -> None:
    """Append each accepted change of a resumed run to ``config.changes.jsonl``."""
    if not changes:
        return
    print(f"--resume: changed {', '.join(f'{k} {o!r} -> {n!r}' for k, (o, n) in changes.items())} "
          f"(recorded in {Path(run_dir) / CHANGES_FILE})")
    now = time.strftime("%Y-%m-%dT%H:%M:%S")
    append_jsonl(Path(run_dir) / CHANGES_FILE,
                 *({"time": now, "step": step, "key": key, "old": old, "new": new} for key, (old, new) in changes.items()))


def write_config(run_dir: str | Path, config) -> None:
    """``config.json``: the options the run is trained with (atomically replaced)."""
    write_json_atomic(Path(run_dir) / CONFIG_FILE, to_dict(config))


def seed_everything(seed: int) -> None:
    """Seed Python's and torch's generators (a run's initial RNG state; a resume restores the saved one)."""
    torch.manual_seed(seed)
    random.seed(seed)


class RunDir:
    """A run's folder and its lifecycle, the same for every trainer (``zero``, ``sft``; the
    pipeline runs them): open it before any model loads, find where to resume, restore, record.

    * ``RunDir(cfg, records, what, resume, overwrite)``: the folder is writable and holds no earlier
      run unless resumed (``--resume``) or replaced (``--overwrite``); a resumed run's options are
      checked against its recorded ``config.json`` (:func:`resume_changes`).
    * ``checkpoint``: the newest checkpoint to resume from (None: start at step 0).
    * :meth:`restore`: the checkpoint's trainer state, with the RNG state set and the logs cut
      after its step, so a resumed run appends where the checkpoint was taken.
    * :meth:`begin`: record the accepted changes and write ``config.json``.
    * :meth:`save`: ``checkpoint-STEP`` with its manifest; :meth:`close`: the run lock released
      (taken when the folder is opened: a second writer is refused, :func:`lock_run`).

    ``main``: this process writes the records (rank 0 under ``torchrun``; the others only read).

    Usage::

        run = RunDir(cfg, ["metrics.jsonl", "summary.json"], "fine-tuning run", resume=True)
        model = load(run.checkpoint or cfg.model)
        step = run.restore(["metrics.jsonl"])["step"] if run.checkpoint else 0
        run.begin(step, ["metrics.jsonl"])
    """

    def __init__(self, cfg, records: list[str], what: str, resume: bool = False, overwrite: bool = False,
                 main: bool = True):
        self.path, self.cfg, self.resume, self.main = Path(cfg.out), cfg, resume, main
        self.changes: dict[str, tuple] = {}
        self.lock = lock_run(self.path) if main else None  # before anything is read or removed
        if main:
            check_fresh_run_dir(self.path, records, resume, overwrite, what)
            self.changes = resume_changes(self.path, cfg, what) if resume else {}
        seed_everything(cfg.seed)
        self.checkpoint: Path | None = resume_point(self.path, cfg) if resume else None

    def refuse_finished(self, steps: int) -> None:
        """A resumed run that already trained ``steps`` steps: :class:`RunFinished` (nothing changes)."""
        if self.resume:
            check_not_finished(self.path, steps)

    def close(self) -> None:
        """Release the run lock (the run has ended)."""
        if self.lock is not None:
            self.lock.close()

    def restore(self, logs: list[str]) -> dict:
        """:attr:`checkpoint`'s trainer state; sets the saved RNG state and (``main``) drops the
        lines of ``logs`` written after its step."""
        state = load_trainer_state(self.checkpoint)
        set_rng_state(state["rng"])
        self.truncate(logs, state["step"])
        print(f"resumed from {self.checkpoint} at step {state['step']}")
        return state

    def truncate(self, logs: list[str], step: int) -> None:
        """Drop the lines of ``logs`` (JSONL files of the run) logged after ``step``."""
        if self.main:
            for name in logs:
                truncate_jsonl_after(self.path / name, step)

    def begin(self, step: int, logs: list[str]) -> None:
        """Record the resume's accepted changes and write ``config.json``. Resuming a folder with
        no checkpoint starts over, without the records of the lost steps."""
        if self.resume and step == 0 and self.checkpoint is None:
            print(f"--resume: no checkpoint in {self.path}; starting from step 0")
            self.truncate(logs, -1)
        if self.main:
            record_changes(self.path, self.changes, step)
            write_config(self.path, self.cfg)

    def save(self, step: int, model, tokenizer, state: dict, keep: int, extra_files: list[Path] = ()) -> Path:
        """``checkpoint-STEP`` with ``state`` and the RNG state (:func:`save_checkpoint`)."""
        return save_checkpoint(self.path, step, model, tokenizer, {**state, "rng": rng_state(), "step": step},
                               keep, extra_files, config=self.cfg)


class GracefulStop:
    """Turns the first Ctrl-C (SIGINT) or SIGTERM (what schedulers and ``docker stop`` send) into a
    request that a trainer honours at its next safe point (after a step: checkpoint, then
    :class:`Interrupted`); a second one interrupts at once. Outside the main thread it does nothing
    (signals go to the main thread)."""

    SIGNALS = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM"}

    def __init__(self):
        self.requested = False
        self._previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._handle) for sig in self.SIGNALS}
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print(f"\n{self.SIGNALS[signum]}: stopping after this step (Ctrl-C again to stop at once)", flush=True)

    def checkpoint_due(self, step: int, total: int, every: int) -> bool:
        """Whether a run should save ``checkpoint-STEP`` now: every ``every`` steps, at the end, and
        when a stop was requested."""
        return bool(every and step % every == 0) or step == total or self.requested

    def stop_here(self, step: int, total: int, run_dir: Path) -> None:
        """Raise :class:`Interrupted` if a stop was requested before the end."""
        if self.requested and step < total:
            raise Interrupted(step, total, run_dir)

    def __exit__(self, *exc):
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        return False
