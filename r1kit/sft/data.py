"""SFT data: rows to token ids with loss masks, epoch plans (packing or length bucketing), batches.

A row is ``{"prompt", "completion"}`` or ``{"messages": [...]}`` (see ``SFTConfig.data``). Each
becomes an :class:`Example`: token ids and labels aligned with them, ``-100`` where no loss is
taken (prompt, system and user turns, chat-template text around the assistant turns, and always
the first token, which nothing in its own sequence predicts). Text is tokenized segment by
segment (prompt, then completion) with ``add_special_tokens=False``, exactly as the rollout
sampler tokenizes a prompt before generating, so the loss boundary falls on a token boundary.

Batching, per epoch, from a fresh seeded shuffle:

* ``pack``: examples are laid one after another into rows of at most ``max_length`` tokens (the
  next example starts a new row when it does not fit). Position ids restart at 0 at each example
  and no attention mask is passed: transformers then builds a block-diagonal causal mask from the
  position ids (packed-sequence format), so no token attends to another example. Padding at the
  end of a row gets position ids of its own, labels ``-100``.
* ``bucket``: examples are sorted by length (ties in shuffled order), cut into micro-batches of
  ``batch_size`` right-padded rows with an attention mask, and the micro-batches are shuffled.
"""
from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from r1kit.data.jsonl import DataError, read_rows

IGNORE = -100
ROLES = ("system", "user", "assistant", "tool")


@dataclass
class Example:
    """One training sequence: ``input_ids`` and ``labels`` of the same length (``-100`` = no loss)."""

    input_ids: list[int]
    labels: list[int]

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def n_targets(self) -> int:
        """Tokens that carry loss."""
        return sum(label != IGNORE for label in self.labels)


# ---- loading rows ---------------------------------------------------------------------------
def _datasets(spec: str):
    try:
        import datasets
    except ImportError:
        raise DataError(f"{spec}: reading Hugging Face datasets needs the optional 'datasets' package "
                        "(pip install datasets); or give a JSONL/JSON/Parquet file") from None
    return datasets


def load_sft_rows(spec: str, limit: int | None = None) -> list[dict]:
    """Rows from a JSONL/JSON/Parquet file, ``hf:NAME[:SPLIT]`` or a ``save_to_disk`` folder.

    Raises :class:`DataError` for a missing file, an unreadable line (file:line) or a missing
    ``datasets`` package.
    """
    if not spec:
        raise DataError("sft: no training data (give data=FILE, hf:NAME[:SPLIT] or a datasets folder)")
    if spec.startswith("hf:"):
        name, _, split = spec[3:].partition(":")
        try:
            ds = _datasets(spec).load_dataset(name, split=split or "train")
        except Exception as exc:  # offline, unknown name or split: say which
            raise DataError(f"{spec}: could not load the dataset ({type(exc).__name__}: {exc})") from None
    elif Path(spec).is_dir():
        datasets = _datasets(spec)
        try:
            ds = datasets.load_from_disk(spec)
        except Exception as exc:
            raise DataError(f"{spec}: not a folder written by datasets' save_to_disk ({exc})") from None
        if isinstance(ds, datasets.DatasetDict):
            if "train" not in ds:
                raise DataError(f"{spec}: a DatasetDict without a 'train' split (splits: {', '.join(ds)})")
            ds = ds["train"]
    else:
        rows = read_rows(spec)
        return rows[:limit] if limit else rows
    if limit:
        ds = ds.select(range(min(limit, len(ds))))
    return ds.to_list()


def row_kind(row: dict, where: str) -> str:
    """``prompt_completion`` or ``messages``; :class:`DataError` naming ``where`` and the field otherwise."""
    if "messages" in row and row["messages"] is not None:
        messages = row["messages"]
        if not isinstance(messages, list) or not messages:
            raise DataError(f"{where}: field 'messages' must be a non-empty list of {{role, content}}")
        for j, m in enumerate(messages):
            if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
                raise DataError(f"{where}: messages[{j}] needs 'role' (one of {', '.join(ROLES)}) "
                                "and a string 'content'")
        if not any(m["role"] == "assistant" for m in messages):
            raise DataError(f"{where}: field 'messages' has no assistant turn to learn from")
        return "messages"
    for name in ("prompt", "completion"):
        if not isinstance(row.get(name), str):
            raise DataError(f"{where}: missing field {name!r} (a row needs 'prompt' and 'completion', "
                            "or 'messages')")
    if not row["completion"]:
        raise DataError(f"{where}: field 'completion' is empty")
    return "prompt_completion"


# ---- tokenization ---------------------------------------------------------------------------
def _render(tokenizer, messages: list[dict], generation_prompt: bool) -> str:
    """Messages as text: the tokenizer's chat template, else ``User:``/``Assistant:`` lines."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)
    eos = tokenizer.eos_token or ""
    text = "".join(f"{m['content']}\n" if m["role"] == "system"
                   else f"Assistant: {m['content']}{eos}\n" if m["role"] == "assistant"
                   else f"{m['role'].capitalize()}: {m['content']}\n" for m in messages)
    return text + ("Assistant:" if generation_prompt else "")


def chat_segments(messages: list[dict], tokenizer) -> list[tuple[str, bool]]:
    """The rendered conversation cut into ``(text, is_target)`` segments: each assistant turn's text
    (as the template writes it after the generation prompt, closing tokens included) is a target;
    everything else is context. Turns after the last assistant turn are left out.

    The template must render each conversation prefix as a prefix of the longer one (templates that
    rewrite earlier turns, e.g. drop earlier reasoning, raise :class:`DataError`).
    """
    segments, done = [], ""
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prefix = _render(tokenizer, messages[:i], True)
        full = _render(tokenizer, messages[: i + 1], False)
        if not prefix.startswith(done) or not full.startswith(prefix):
            raise DataError("the chat template does not render conversations prefix by prefix; "
                            "use prompt/completion rows instead")
        segments += [(prefix[len(done):], False), (full[len(prefix):], True)]
        done = full
    return [(text, target) for text, target in segments if text]


def completion_segments(row: dict, where: str = "row") -> list[tuple[str, bool]]:
    """The completion cut into ``(text, is_target)`` segments: the character spans listed in the
    row's ``masked`` field (``[[start, end], ...]``, sorted, in the completion: a tool transcript's
    observations, written by ``r1kit sample``) take no loss. :class:`DataError` naming ``where``
    for spans that are not that."""
    completion, spans = row["completion"], row.get("masked") or []
    segments, at = [], 0
    for span in spans:
        if not (isinstance(span, list) and len(span) == 2 and all(isinstance(x, int) for x in span)
                and at <= span[0] < span[1] <= len(completion)):
            raise DataError(f"{where}: field 'masked': {span!r} is not a [start, end] span of the completion "
                            f"after {at} (spans are sorted character offsets, at most {len(completion)})")
        segments += [(completion[at:span[0]], True), (completion[span[0]:span[1]], False)]
        at = span[1]
    return [(text, target) for text, target in segments + [(completion[at:], True)] if text]


def tokenize_row(row: dict, tokenizer, add_eos: bool = True, where: str = "row") -> Example:
    """The :class:`Example` of one row: loss on the completion (plus EOS when ``add_eos``) or on
    the assistant turns; never on the first token."""
    if row_kind(row, where) == "messages":
        segments = chat_segments(row["messages"], tokenizer)
    else:
        segments = [(row["prompt"], False), *completion_segments(row, where)]
    ids, labels = [], []
    for text, target in segments:
        seg = tokenizer(text, add_special_tokens=False)["input_ids"]
        ids += seg
        labels += seg if target else [IGNORE] * len(seg)
    if add_eos and "messages" not in row and tokenizer.eos_token_id is not None:
        ids.append(tokenizer.eos_token_id)
        labels.append(tokenizer.eos_token_id)
    if labels:
        labels[0] = IGNORE
    return Example(ids, labels)


def truncate(example: Example, max_length: int) -> Example:
    """The first ``max_length`` tokens of ``example``."""
    return Example(example.input_ids[:max_length], example.labels[:max_length])


def build_examples(rows: list[dict], tokenizer, max_length: int, add_eos: bool = True,
                   source: str = "data") -> tuple[list[Example], dict]:
    """Tokenize ``rows``; cut examples to ``max_length`` and drop those left without a target.

    Returns the examples and counts ``{"rows", "examples", "truncated", "dropped"}``.
    """
    examples, truncated, dropped = [], 0, 0
    for i, row in enumerate(rows):
        example = tokenize_row(row, tokenizer, add_eos, where=f"{source}:{i + 1}")
        if len(example) > max_length:
            truncated += 1
            example = truncate(example, max_length)
        if example.n_targets == 0:
            dropped += 1
            continue
        examples.append(example)
    return examples, {"rows": len(rows), "examples": len(examples), "truncated": truncated, "dropped": dropped}


def fingerprint(examples: list[Example]) -> str:
    """A hash of the tokenized data (so that ``--resume`` can refuse changed data)."""
    h = hashlib.sha256()
    for ex in examples:
        h.update(repr((ex.input_ids, ex.labels)).encode())
    return h.hexdigest()[:16]


# ---- epoch plans ----------------------------------------------------------------------------
def pack(order: list[int], lengths: list[int], max_length: int) -> list[list[int]]:
    """Lay examples (indices, in ``order``) into rows of at most ``max_length`` tokens; an example
    that does not fit in the current row starts the next one."""
    rows, current, used = [], [], 0
    for i in order:
        if current and used + lengths[i] > max_length:
            rows.append(current)
            current, used = [], 0
        current.append(i)
        used += lengths[i]
    if current:
        rows.append(current)
    return rows


def epoch_micro_batches(lengths: list[int], epoch: int, seed: int, batching: str, batch_size: int,
                        max_length: int) -> list[list[list[int]]]:
    """The micro-batches of one epoch: each a list of rows, each row a list of example indices
    (one per row with ``bucket``). Deterministic for ``(seed, epoch)``."""
    rng = random.Random(seed * 1_000_003 + epoch)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    if batching == "pack":
        rows = pack(order, lengths, max_length)
        return [rows[i:i + batch_size] for i in range(0, len(rows), batch_size)]
    if batching != "bucket":
        raise ValueError(f"unknown batching {batching!r}; use pack or bucket")
    order.sort(key=lambda i: lengths[i])  # stable: equal lengths keep the shuffled order
    micro = [[[i] for i in order[lo:lo + batch_size]] for lo in range(0, len(order), batch_size)]
    rng.shuffle(micro)
    return micro


def collate(examples: list[Example], rows: list[list[int]], pad_id: int, packed: bool) -> dict:
    """Tensors of one micro-batch: ``input_ids``, ``labels``, ``position_ids`` (restarting at each
    example) and, unpacked, an ``attention_mask``. Rows are right-padded to the longest."""
    width = max(sum(len(examples[i]) for i in row) for row in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    positions = torch.zeros((len(rows), width), dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    for r, row in enumerate(rows):
        col = 0
        for i in row:
            ex = examples[i]
            n = len(ex)
            input_ids[r, col:col + n] = torch.tensor(ex.input_ids)
            labels[r, col:col + n] = torch.tensor(ex.labels)
            positions[r, col:col + n] = torch.arange(n)
            col += n
        attention[r, :col] = 1
        positions[r, col:] = torch.arange(width - col)  # padding: a segment of its own
    batch = {"input_ids": input_ids, "labels": labels, "position_ids": positions}
    if not packed:
        batch["attention_mask"] = attention
    batch["n_tokens"] = int(attention.sum())
    return batch


def masked_lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Summed next-token cross-entropy over the positions whose label is not ``-100``, and their
    count. ``labels`` are aligned with the inputs: the logits at position t predict label t + 1."""
    targets = labels[:, 1:]
    logits = logits[:, :-1]
    loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), targets.reshape(-1),
                           ignore_index=IGNORE, reduction="sum")
    return loss, int((targets != IGNORE).sum())
