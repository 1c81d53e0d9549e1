"""Rejection sampling (DeepSeek-R1 stage 3; ``r1kit sample``): sample k completions per prompt from a
checkpoint, keep the correct and readable ones, write them as SFT rows.

Every sample gets exactly one verdict, the first of these that applies (so kept + rejected =
sampled, and ``stats.json`` counts each rejection once, by reason):

1. ``truncated``: it hit ``max_new_tokens`` (unless ``keep_truncated``).
2. ``bad_format``: the format reward (``format_reward``) is below 1, or ``layout=cold_start``
   cannot split it into reasoning and summary.
3. ``unverifiable`` / ``incorrect``: math and code rows are graded by the rule reward (``reward``,
   through :func:`r1kit.rewards.score`, so a failing reward counts as 0 and is logged); general
   rows by the judge model (:mod:`r1kit.sampling.judge`), or ``unverifiable`` without one.
4. ``mixed_language``, ``long_paragraph``, ``code_block``, ``repetition``: the readability filter
   (:mod:`r1kit.data.readability`).
5. ``duplicate``: its text (whitespace collapsed) equals a sample already kept for the prompt.
6. ``over_cap``: the prompt already has ``max_per_prompt`` kept samples.

Files in ``out``: ``sft.jsonl`` (kept samples, appended and flushed prompt by prompt),
``progress.jsonl`` (one line per finished prompt, written after its samples), ``stats.json``
(totals, rewritten atomically after each chunk) and ``config.json``.

Resumption: ``--resume`` reads ``progress.jsonl`` (a torn last line is dropped), removes from
``sft.jsonl`` any row of a prompt that has no progress line (a crash between the two writes) and
continues with the unfinished prompts. Chunks of prompts and their seeds are fixed by position,
so the resumed run writes exactly what an uninterrupted one would, and no prompt is ever written
twice. A resumed run must use the same options (``limit``, ``threads``, ``out`` and
``judge_batch_size`` may change). Raising ``limit`` extends a finished run; when the old limit was
a multiple of ``batch_size`` the result equals a run made with the new limit from the start
(otherwise the rest of the last, partial chunk is sampled in a fuller batch, still once per prompt).
"""
from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

from tqdm.auto import tqdm

from r1kit.config import ConfigError, to_dict, validate
from r1kit.data import synthetic
from r1kit.data.benchmarks import BENCHMARKS, load_problems
from r1kit.data.cold_start import sft_row, to_cold_start
from r1kit.data.jsonl import DataError, append_jsonl, read_jsonl_log, read_rows, write_json_atomic, write_jsonl
from r1kit.data.readability import READABILITY_REASONS, readability_issue
from r1kit.environments import make_environment, prompt_for
from r1kit.models import load_model, load_tokenizer, resolve_model_path
from r1kit.models.device import resolve_device
from r1kit.rewards import RewardStats, get_reward, score
from r1kit.rollout import SamplingParams
from r1kit.rollout.engines import EngineSetup, make_engine
from r1kit.runs import check_fresh_run_dir, lock_run, record_changes, resume_changes
from r1kit.sampling.config import SampleConfig
from r1kit.sampling.judge import EndpointJudge, Judge
from r1kit.threads import apply as apply_threads

REJECTION_REASONS = ("truncated", "bad_format", "unverifiable", "incorrect", *READABILITY_REASONS,
                     "duplicate", "over_cap")
RECORDS = ["sft.jsonl", "progress.jsonl", "stats.json"]
FORMAT_FOR_TEMPLATE = {"r1_zero": "format", "chat": "format_think", "plain": None}


# ---- prompts --------------------------------------------------------------------------------
def grading_kind(row: dict) -> str:
    """``code`` (the row has tests), ``general`` (``kind: general``, or no ``answer``) or ``math``."""
    if row.get("tests") or row.get("test"):
        return "code"
    if row.get("kind") == "general" or row.get("answer") is None:
        return "general"
    return "math"


def reference_of(row: dict) -> str | None:
    """The reference a judge compares with: ``reference``, else ``answer``."""
    ref = row.get("reference", row.get("answer"))
    return None if ref is None else str(ref)


def load_prompts(cfg: SampleConfig) -> list[dict]:
    """The prompt rows (``cfg.data``), first ``cfg.limit`` of them, with unique ``id``s.

    Raises :class:`DataError` for a missing file or field (file:line), a row that nothing can grade,
    or a repeated id.
    """
    if cfg.data == "synthetic":
        rows = synthetic.train_set(cfg.train_size)
    elif cfg.data == "synthetic_code":
        rows = synthetic.code_train_set(cfg.train_size)
    elif cfg.data in BENCHMARKS or cfg.data == "humaneval":
        rows = load_problems(cfg.data, cfg.data_dir)
    else:
        rows = read_rows(cfg.data)
        for i, row in enumerate(rows):
            for name in ("id", "problem"):
                if row.get(name) is None:
                    raise DataError(f"{cfg.data}:{i + 1}: missing field {name!r} (required: id, problem, "
                                    "and answer, tests or reference)")
            if grading_kind(row) == "general" and reference_of(row) is None:
                raise DataError(f"{cfg.data}:{i + 1}: nothing to grade with: give 'answer', 'tests' or 'reference'")
    rows = rows[: cfg.limit] if cfg.limit else rows
    seen: set[str] = set()
    for i, row in enumerate(rows):
        if str(row["id"]) in seen:
            raise DataError(f"{cfg.data}:{i + 1}: repeated id {row['id']!r} (ids must be unique to resume)")
        seen.add(str(row["id"]))
    return rows


def observation_spans(segments: list[tuple[str, bool]]) -> list[list[int]]:
    """Character spans ``[start, end)`` of the observation runs in the joined ``segments``
    (:meth:`r1kit.rollout.Rollout.segments`): what an SFT row of a tool transcript masks."""
    spans, at = [], 0
    for text, policy in segments:
        if not policy:
            spans.append([at, at + len(text)])
        at += len(text)
    return spans


# ---- verdicts -------------------------------------------------------------------------------
def normalised(text: str) -> str:
    """``text`` with runs of whitespace collapsed (the key of the duplicate check)."""
    return " ".join(text.split())


def format_reward_name(cfg: SampleConfig) -> str | None:
    """The format reward a kept sample needs (None: no format check)."""
    if cfg.format_reward == "auto":
        return FORMAT_FOR_TEMPLATE[cfg.template]
    return None if cfg.format_reward == "none" else cfg.format_reward


def reward_name(row: dict, cfg: SampleConfig) -> str:
    """The rule reward that grades ``row``."""
    if cfg.reward != "auto":
        return cfg.reward
    return "code" if grading_kind(row) == "code" else "accuracy_math"


def training_text(prompt: str, completion: str, cfg: SampleConfig) -> str | None:
    """The completion as it goes into the SFT row (``layout``); None if it cannot be laid out.
    A ``<think>`` that the prompt opened is written back into ``messages`` rows."""
    text = completion
    if cfg.layout == "cold_start":
        text = to_cold_start(completion)
        if text is None:
            return None
    elif cfg.row_format == "messages" and prompt.rstrip().endswith("<think>") and "<think>" not in text:
        text = "<think>" + text
    return text


def screen(text: str, finish_reason: str, row: dict, cfg: SampleConfig) -> str | None:
    """Verdicts 1-2 (before grading): ``truncated`` or ``bad_format``, or None."""
    if finish_reason == "length" and not cfg.keep_truncated:
        return "truncated"
    fmt = format_reward_name(cfg)
    if fmt and get_reward(fmt)(text, row) < 1.0:
        return "bad_format"
    return None


def verdicts(texts: list[str], early: list[str | None], correct: list[bool | None], row: dict,
             cfg: SampleConfig) -> list[str | None]:
    """The verdict of each sample of one prompt (None = kept), given the screening verdicts
    ``early`` and the grades ``correct`` (None = could not be graded): rules 3-6 of the module."""
    out: list[str | None] = []
    kept_texts: set[str] = set()
    for text, reason, ok in zip(texts, early, correct):
        if reason is None:
            reason = "unverifiable" if ok is None else None if ok else "incorrect"
        if reason is None:
            reason = readability_issue(text, cfg.readability, row)
        if reason is None and cfg.dedup and normalised(text) in kept_texts:
            reason = "duplicate"
        if reason is None and cfg.max_per_prompt and len(kept_texts) >= cfg.max_per_prompt:
            reason = "over_cap"
        if reason is None:
            kept_texts.add(normalised(text))
        out.append(reason)
    return out


def aggregate(progress: list[dict], n_prompts: int) -> dict:
    """``stats.json``: totals over the finished prompts' progress lines."""
    rejected = Counter({reason: 0 for reason in REJECTION_REASONS})
    for p in progress:
        rejected.update(p["rejected"])
    sampled, kept = sum(p["sampled"] for p in progress), sum(p["kept"] for p in progress)
    return {
        "prompts": len(progress), "prompts_total": n_prompts, "sampled": sampled, "kept": kept,
        "rejected_total": sum(rejected.values()), "rejected": dict(rejected),
        "prompts_with_kept": sum(p["kept"] > 0 for p in progress),
        "kept_per_prompt": kept / len(progress) if progress else 0.0,
        "mean_kept_tokens": sum(p["kept_tokens"] for p in progress) / kept if kept else 0.0,
        "judged": sum(p.get("judged", 0) for p in progress),
        "judge_accepted": sum(p.get("judge_accepted", 0) for p in progress),
        "reward_failures": sum(p.get("reward_failures", 0) for p in progress),
        "sampling_seconds": round(sum(p.get("seconds", 0.0) for p in progress), 2),
    }


# ---- the run --------------------------------------------------------------------------------
class RejectionSampler:
    """Runs ``r1kit sample`` as an :class:`SampleConfig` says (see the module docstring)."""

    def __init__(self, cfg: SampleConfig, resume: bool = False, overwrite: bool = False, progress: bool = True):
        self.cfg, self.progress, self.out = cfg, progress, Path(cfg.out)
        self._check_options()
        self.lock = lock_run(self.out)
        check_fresh_run_dir(self.out, RECORDS, resume, overwrite, "sampling run")
        self.rows = load_prompts(cfg)
        if resume:
            self._check_resume_config()
        self.done = self._recover() if resume else []
        self.out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.out / "config.json", to_dict(cfg))
        self.engine = self.tokenizer = self.judge = None
        self.environment = make_environment(cfg.environment, cfg.tools)  # None: single-turn samples
        self.reward_stats = RewardStats()

    def _check_options(self) -> None:
        cfg = self.cfg
        validate(cfg)
        for key, name in (("reward", cfg.reward), ("format_reward", cfg.format_reward)):
            if name not in ("auto", "none"):
                try:
                    get_reward(name)
                except ValueError as exc:
                    raise ConfigError(f"{key}: {exc}") from None

    def _check_resume_config(self) -> None:
        record_changes(self.out, resume_changes(self.out, self.cfg, "sampling run"), len(self.rows))

    def _recover(self) -> list[dict]:
        """Finished prompts' progress lines; drops SFT rows of prompts that did not finish."""
        progress = read_jsonl_log(self.out / "progress.jsonl")
        write_jsonl(self.out / "progress.jsonl", progress)  # without a torn last line
        done = {p["id"] for p in progress}
        rows = read_jsonl_log(self.out / "sft.jsonl")
        kept = [r for r in rows if r.get("source_id") in done]
        if (self.out / "sft.jsonl").exists():
            write_jsonl(self.out / "sft.jsonl", kept)
        if progress:
            print(f"--resume: {len(progress)} prompts done, {len(rows) - len(kept)} rows of unfinished prompts dropped")
        return progress

    def _load_models(self, need_judge: bool) -> None:
        cfg = self.cfg
        if self.engine is None:
            apply_threads(cfg.threads)
            self.tokenizer = load_tokenizer(cfg.model)
            self.engine = make_engine(cfg.engine, EngineSetup(
                self.tokenizer, lambda: load_model(cfg.model, cfg.dtype, resolve_device(cfg.device)),
                resolve_model_path(cfg.model), cfg.dtype, cfg.endpoint, self.out / "vllm-server.log"))
        if need_judge and self.judge is None and cfg.judge_endpoint.url:
            self.judge = EndpointJudge(cfg.judge_endpoint, cfg.judge_threshold)
        elif need_judge and self.judge is None and cfg.judge:
            self.judge = Judge(cfg.judge, cfg.dtype, cfg.judge_threshold, cfg.judge_batch_size,
                               resolve_device(cfg.device))

    def _grade(self, rows: list[dict], rollouts, early: list[list[str | None]]) -> tuple[list, list, list]:
        """Grade every screened-in sample. Returns, per prompt, the correctness of each sample (None:
        not graded, or unverifiable), the number of failed reward calls and of judged samples."""
        cfg = self.cfg
        correct: list[list[bool | None]] = [[None] * cfg.k for _ in rows]
        failures, judged, to_judge = [0] * len(rows), [0] * len(rows), []
        for i, row in enumerate(rows):
            kind, before = grading_kind(row), self.reward_stats.total()
            for j in range(cfg.k):
                text = rollouts[i * cfg.k + j].text
                if early[i][j] is not None:
                    continue
                if kind != "general":
                    total, _ = score(text, row, {reward_name(row, cfg): 1.0}, self.reward_stats)
                    correct[i][j] = total >= cfg.min_reward
                elif self.judge is not None:
                    to_judge.append((i, j, (str(row["problem"]), reference_of(row), text)))
                    judged[i] += 1
            failures[i] = self.reward_stats.total() - before
        if to_judge:
            for (i, j, _), ok in zip(to_judge, self.judge.accepts([item for _, _, item in to_judge])):
                correct[i][j] = ok
        return correct, failures, judged

    def _process_chunk(self, chunk_index: int, rows: list[dict]) -> None:
        """Sample, grade and write the unfinished prompts of one chunk."""
        cfg = self.cfg
        t0 = time.time()
        self._load_models(need_judge=any(grading_kind(r) == "general" for r in rows))
        prompts = [prompt_for(self.environment, r, cfg.template, self.tokenizer) for r in rows]
        params = SamplingParams(n=cfg.k, temperature=cfg.temperature, top_p=cfg.top_p, max_new_tokens=cfg.max_new_tokens,
                                seed=cfg.seed * 1_000_003 + chunk_index)
        rollouts = self.engine.generate(prompts, params, environment=self.environment,
                                        examples=rows if self.environment else None)
        segments = [r.segments(self.tokenizer) if r.policy_mask else None for r in rollouts]
        masked = [observation_spans(parts) if parts else None for parts in segments]
        for r, parts in zip(rollouts, segments):  # the transcript as its spans count it
            r.text = "".join(text for text, _ in parts) if parts else r.text
        early, sft_texts = [], []
        for i, (row, prompt) in enumerate(zip(rows, prompts)):
            mine = rollouts[i * cfg.k:(i + 1) * cfg.k]
            texts = [training_text(prompt, r.text, cfg) for r in mine]
            early.append([screen(r.text, r.finish_reason, row, cfg) or (None if t is not None else "bad_format")
                          for r, t in zip(mine, texts)])
            sft_texts.append(texts)
        correct, failures, judged = self._grade(rows, rollouts, early)
        seconds = (time.time() - t0) / len(rows)
        done = {p["id"] for p in self.done}
        for i, (row, prompt) in enumerate(zip(rows, prompts)):
            if str(row["id"]) in done:
                continue
            mine = rollouts[i * cfg.k:(i + 1) * cfg.k]
            texts = [t if t is not None else r.text for t, r in zip(sft_texts[i], mine)]
            reasons = verdicts(texts, early[i], correct[i], row, cfg)
            kept_tokens = 0
            for j, (r, text, reason) in enumerate(zip(mine, texts, reasons)):
                if reason is None:
                    kept_tokens += len(r.token_ids)
                    extra = {"source_id": str(row["id"]), "sample": j, "num_tokens": len(r.token_ids)}
                    if row.get("answer") is not None:
                        extra["answer"] = row["answer"]
                    append_jsonl(self.out / "sft.jsonl", sft_row(f"{row['id']}-s{j}", str(row["problem"]), text,
                                                                 cfg.template, cfg.row_format, self.tokenizer, prompt,
                                                                 masked[i * cfg.k + j], **extra))
            record = {"id": str(row["id"]), "sampled": cfg.k, "kept": reasons.count(None),
                      "rejected": dict(Counter(r for r in reasons if r is not None)), "kept_tokens": kept_tokens,
                      "judged": judged[i], "judge_accepted": sum(bool(correct[i][j]) for j in range(cfg.k))
                      if judged[i] else 0, "reward_failures": failures[i],
                      "seconds": round(seconds, 4)}
            append_jsonl(self.out / "progress.jsonl", record)
            self.done.append(record)

    def run(self) -> dict:
        """Process every unfinished prompt; returns the stats (also in ``stats.json``)."""
        try:
            return self._run()
        finally:
            if self.engine is not None:
                self.engine.close()

    def _run(self) -> dict:
        cfg, n = self.cfg, len(self.rows)
        done = {p["id"] for p in self.done}
        with tqdm(total=n, initial=len(done & {str(r["id"]) for r in self.rows}), desc="rejection sampling",
                  unit="prompt", disable=not self.progress, mininterval=1) as bar:
            for chunk_index, lo in enumerate(range(0, n, cfg.batch_size)):
                rows = self.rows[lo:lo + cfg.batch_size]
                todo = [r for r in rows if str(r["id"]) not in done]
                if not todo:
                    continue
                self._process_chunk(chunk_index, rows)
                done = {p["id"] for p in self.done}
                stats = self._stats()
                write_json_atomic(self.out / "stats.json", stats)
                bar.update(len(todo))
                bar.set_postfix(kept=stats["kept"], sampled=stats["sampled"], refresh=False)
        stats = self._stats()
        write_json_atomic(self.out / "stats.json", stats)
        return stats

    def _stats(self) -> dict:
        ids = {str(r["id"]) for r in self.rows}
        stats = aggregate([p for p in self.done if p["id"] in ids], len(self.rows))
        stats.update(model=self.cfg.model, data=self.cfg.data, k=self.cfg.k, judge=self.cfg.judge)
        return stats


def run_sample(cfg: SampleConfig, resume: bool = False, overwrite: bool = False, progress: bool = True) -> dict:
    """Rejection-sample as ``cfg`` says; returns the stats."""
    return RejectionSampler(cfg, resume=resume, overwrite=overwrite, progress=progress).run()


