r"""Cold-start data (DeepSeek-R1 stage 1): long chains of thought in the paper's readable layout.

The layout is ``|special_token|<reasoning_process>|special_token|<summary>``
(:func:`r1kit.prompts.cold_start_text`): the reasoning between the two markers, then a short
summary that states the final answer. :func:`format_cold_start` turns any row
``{problem, reasoning, answer}`` (optional ``id``, ``summary``, ``language``) into an SFT row for
``r1kit sft``; the summary is the row's ``summary`` if given, else ``ColdStartConfig.summary``
filled with the answer (by default ``The final answer is $\boxed{ANSWER}$.``, which the strict
answer extraction reads). :func:`run_cold_start` (``r1kit cold-start``) formats a whole file and
keeps only readable rows (:mod:`r1kit.data.readability`), writing ``sft.jsonl`` and
``stats.json`` (kept + rejected by reason = rows read).

:func:`to_cold_start` rewrites a completion in R1's ``<think>reasoning</think> summary`` layout to
the cold-start layout (``r1kit sample layout=cold_start``).
"""
from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from r1kit.data.jsonl import DataError, read_rows, require_fields, write_jsonl
from r1kit.data.readability import READABILITY_REASONS, ReadabilityConfig, readability_issue
from r1kit.prompts import build_prompt, cold_start_text

COLD_START_REASONS = ("empty_reasoning", *READABILITY_REASONS)
_MANY_NEWLINES = re.compile(r"\n{3,}")
_TRAILING_SPACE = re.compile(r"[ \t]+\n")


@dataclass
class ColdStartConfig:
    """Formatting a ``{problem, reasoning, answer}`` file as cold-start SFT data (``r1kit cold-start``).

    data: input JSONL/JSON/Parquet file; rows need ``problem``, ``reasoning`` and ``answer``.
    out: output folder (``sft.jsonl``, ``stats.json``).
    template: how the prompt is written for ``prompt_completion`` rows: ``r1_zero`` (the R1-Zero
        template) or ``plain`` (the problem as is).
    row_format: ``prompt_completion`` (``{"prompt", "completion"}``) or ``messages`` (a user and an
        assistant turn, for models with a chat template).
    summary: the summary written after the reasoning when a row has no ``summary`` field;
        ``{answer}`` is replaced by the row's answer.
    readability: the readability filter (rows that fail it are dropped and counted by reason).
    """

    data: str = ""
    out: str = "runs/cold-start"
    template: Literal["r1_zero", "plain"] = "r1_zero"
    row_format: Literal["prompt_completion", "messages"] = "prompt_completion"
    summary: str = "The final answer is $\\boxed{{{answer}}}$."
    readability: ReadabilityConfig = field(default_factory=ReadabilityConfig)


def readable_reasoning(text: str) -> str:
    """``text`` with trailing spaces removed from each line, runs of blank lines cut to one, and
    surrounding whitespace stripped (paragraphs stay separated by one blank line)."""
    text = _TRAILING_SPACE.sub("\n", text.replace("\r\n", "\n").replace("\r", "\n"))
    return _MANY_NEWLINES.sub("\n\n", text).strip()


def split_r1_response(completion: str) -> tuple[str, str] | None:
    """``(reasoning, summary)`` of a completion in R1's ``[<think>]reasoning</think> summary``
    layout (the opening tag may sit in the prompt); None without exactly one ``</think>``."""
    if completion.count("</think>") != 1:
        return None
    reasoning, summary = completion.split("</think>", 1)
    return reasoning.replace("<think>", "").strip(), summary.strip()


def to_cold_start(completion: str) -> str | None:
    """The cold-start layout of an R1-layout completion, or None if it is not in that layout."""
    parts = split_r1_response(completion)
    if parts is None:
        return None
    reasoning, summary = parts
    return cold_start_text(readable_reasoning(reasoning), summary)


def sft_row(row_id, problem: str, completion: str, template: str, row_format: str, tokenizer=None,
            prompt: str | None = None, masked: list[list[int]] | None = None, **extra) -> dict:
    """One SFT row for ``r1kit sft``: ``{"id", "prompt", "completion"}`` (the prompt rendered with
    ``template``, or ``prompt`` as given; a completion after an R1-Zero/plain prompt starts with one
    space) or ``{"id", "messages"}`` with a user and an assistant turn. ``masked``: character spans
    ``[start, end)`` of the completion that take no loss (a tool's observations), kept in the row's
    ``masked`` field. ``extra`` fields are kept as is."""
    if row_format == "messages":
        messages = [{"role": "user", "content": problem}, {"role": "assistant", "content": completion.strip()}]
        return {"id": row_id, "messages": messages, **extra}
    prompt = build_prompt(problem, template, tokenizer) if prompt is None else prompt
    shift = 0
    if template != "chat" and not completion.startswith((" ", "\n")):
        completion, shift = " " + completion, 1
    if masked:
        extra["masked"] = [[start + shift, end + shift] for start, end in masked]
    return {"id": row_id, "prompt": prompt, "completion": completion, **extra}


def format_cold_start(row: dict, cfg: ColdStartConfig = ColdStartConfig()) -> dict:
    """The SFT row of one ``{problem, reasoning, answer}`` row in the cold-start layout."""
    summary = row.get("summary") or cfg.summary.format(answer=row["answer"])
    completion = cold_start_text(readable_reasoning(str(row["reasoning"])), str(summary))
    extra = {"answer": row["answer"], **({"language": row["language"]} if row.get("language") else {})}
    return sft_row(row.get("id"), str(row["problem"]), completion, cfg.template, cfg.row_format, **extra)


def cold_start_issue(row: dict, cfg: ColdStartConfig = ColdStartConfig()) -> str | None:
    """Why a ``{problem, reasoning, answer}`` row is dropped (a name in
    :data:`COLD_START_REASONS`), or None when its reasoning is readable."""
    reasoning = readable_reasoning(str(row["reasoning"]))
    if not reasoning:
        return "empty_reasoning"
    return readability_issue(reasoning, cfg.readability, row)


def run_cold_start(cfg: ColdStartConfig) -> dict:
    """Format ``cfg.data`` into ``cfg.out/sft.jsonl`` (readable rows only) and write
    ``cfg.out/stats.json``; returns the stats. Raises :class:`DataError` for a bad input file."""
    if not cfg.data:
        raise DataError("cold-start: no input file (give --data FILE with problem, reasoning, answer)")
    rows = read_rows(cfg.data)
    if not rows:
        raise DataError(f"{cfg.data}: no rows to format")
    require_fields(rows, ("problem", "reasoning", "answer"), cfg.data)
    kept, rejected = [], Counter({reason: 0 for reason in COLD_START_REASONS})
    for i, row in enumerate(rows):
        row = {**row, "id": row.get("id", i)}
        issue = cold_start_issue(row, cfg)
        if issue:
            rejected[issue] += 1
        else:
            kept.append(format_cold_start(row, cfg))
    out = Path(cfg.out)
    write_jsonl(out / "sft.jsonl", kept)
    stats = {"data": str(cfg.data), "rows": len(rows), "kept": len(kept), "rejected": dict(rejected),
             "rejected_total": sum(rejected.values())}
    (out / "stats.json").write_text(json.dumps(stats, indent=2) + "\n")
    return stats
