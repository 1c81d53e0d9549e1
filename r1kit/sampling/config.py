"""Typed configuration of rejection sampling (``r1kit sample``). Every option is documented here, once."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

from r1kit.config import AT_LEAST_1, NON_NEGATIVE, PROBABILITY, ConfigError, Range

from r1kit.data.readability import ReadabilityConfig
from r1kit.environments.config import ToolConfig
from r1kit.models.config import check_device
from r1kit.rollout.config import Engine, EndpointConfig, check_engine


@dataclass
class SampleConfig:
    """Rejection sampling: sample k completions per prompt, keep the correct and readable ones.

    model: the checkpoint sampled from (HF folder, hub id, ``tiny``, ``tiny-small``); with the
        ``openai`` engine, the tokenizer that renders prompts and counts tokens. dtype:
        ``float32`` or ``bfloat16``.
    engine: what samples (r1kit.rollout.engines): ``torch`` (``model`` in this process), ``vllm``
        (a vLLM server r1kit starts on ``model``, or one at ``endpoint.url``) or ``openai`` (any
        OpenAI-compatible endpoint at ``endpoint.url``: a teacher served elsewhere; flags
        ``--teacher-url``/``--teacher-model``).
    endpoint: the server's options (``EndpointConfig`` in r1kit/rollout/config.py: url, served
        model name, the environment variable holding the API key, concurrency, retries, timeouts).
    device: where the model, the judge and the KV caches live: ``auto`` (CUDA when visible, else
        the CPU), ``cpu``, ``cuda`` or ``cuda:N`` (r1kit.models.device).
    data: the prompts: ``synthetic`` (r1kit's arithmetic *training* problems, ``train_size`` of
        them; never the held-out set), ``synthetic_code``, a benchmark name, or a JSONL/JSON/Parquet
        file of rows with ``id`` and ``problem`` plus what grades them: ``answer`` (math, graded by
        rules), ``tests``/``test`` (code, run in the sandbox) or ``kind: general`` with a reference
        in ``reference`` or ``answer`` (graded by the judge; a row without ``answer`` and tests is
        general too).
    data_dir: where benchmark names are resolved. train_size: synthetic problems drawn.
    limit: use only the first N prompts (null: all). Raising it and passing ``--resume`` extends a
        finished run.
    template: prompt template (``r1_zero``, ``chat``, ``plain``).
    k: completions sampled per prompt. temperature/top_p/max_new_tokens: decoding.
    batch_size: prompts per sampling call. Prompts are cut into fixed chunks (chunk c holds
        prompts c*batch_size ...) and chunk c is sampled with seed ``seed * 1000003 + c``, so a
        resumed run writes exactly what an uninterrupted one would.
    seed: sampling seed.
    reward: the rule reward that grades math/code rows (``auto``: ``code`` for rows with tests,
        ``accuracy_math`` otherwise; or any registered reward name). min_reward: a sample is
        correct when its reward is at least this.
    format_reward: the layout a kept sample must have: ``auto`` (``format`` for the r1_zero
        template, ``format_think`` for chat, no check for plain), ``none``, or a reward name (1.0
        needed). keep_truncated: keep samples that hit ``max_new_tokens`` (default: rejected).
    readability: the readability filter (``r1kit.data.readability``: mixed languages, long
        paragraphs, code blocks where the task has none, repetition).
    dedup: reject a sample whose text (whitespace collapsed) equals one already kept for its prompt.
    max_per_prompt: keep at most N samples per prompt (the first ones; 0: no cap).
    judge: HF causal LM (folder, hub id or alias) that grades general rows by comparing the final
        answer with the reference; null: their samples are rejected as ``unverifiable``.
    judge_threshold: accept when P(yes) / (P(yes) + P(no)) >= this. judge_batch_size: prompts per
        judge forward.
    judge_endpoint: a judge served by an OpenAI-compatible endpoint instead of ``judge``
        (``judge_endpoint.url``; P(yes) from the log-probs of its first answer token).
    layout: ``as_sampled`` keeps the completion as written; ``cold_start`` rewrites
        ``<think>reasoning</think> summary`` to the readable ``|special_token|reasoning|special_token|summary``.
    row_format: SFT rows as ``prompt_completion`` (the prompt rendered with ``template``) or
        ``messages`` (user turn = the problem; for students with their own chat template).
    out: output folder: ``sft.jsonl`` (kept samples as SFT rows), ``stats.json`` (sampled, kept
        and rejected by reason), ``progress.jsonl`` (one line per finished prompt), ``config.json``.
    threads: torch CPU threads (0: auto, as many as other processes leave free, see r1kit.threads; N: fixed).
    environment: ``none``, or the environment the samples are multi-turn episodes with
        (``calculator``, ``python``, a registered one; docs/tools.md; engines ``torch`` and ``vllm``).
        A kept sample's SFT row keeps the whole transcript and lists its observations' character
        spans in ``masked``, which ``r1kit sft`` leaves out of the loss. Needs ``row_format:
        prompt_completion`` and ``layout: as_sampled``.
    environment_modules: Python modules to import before ``environment`` is looked up.
    tools: the episodes' options (``ToolConfig`` in r1kit/environments/config.py: max_turns,
        max_output_chars, timeout).
    """

    model: str = "tiny"
    engine: Engine = "torch"
    endpoint: EndpointConfig = field(default_factory=EndpointConfig)
    device: str = "auto"
    dtype: Literal["float32", "bfloat16"] = "float32"
    data: str = "synthetic"
    data_dir: str | None = None
    train_size: int = 4000
    limit: int | None = None
    template: Literal["r1_zero", "chat", "plain"] = "r1_zero"
    k: int = 4
    temperature: float = 0.6
    top_p: float = 0.95
    max_new_tokens: int = 128
    batch_size: int = 32
    seed: int = 0
    reward: str = "auto"
    min_reward: float = 1.0
    format_reward: str = "auto"
    keep_truncated: bool = False
    readability: ReadabilityConfig = field(default_factory=ReadabilityConfig)
    dedup: bool = True
    max_per_prompt: int = 2
    judge: str | None = None
    judge_threshold: float = 0.5
    judge_batch_size: int = 8
    judge_endpoint: EndpointConfig = field(default_factory=EndpointConfig)
    layout: Literal["as_sampled", "cold_start"] = "as_sampled"
    row_format: Literal["prompt_completion", "messages"] = "prompt_completion"
    out: str = "runs/sample"
    threads: int = 0
    environment: str = "none"
    environment_modules: list[str] = field(default_factory=list)
    tools: ToolConfig = field(default_factory=ToolConfig)

    on_resume: ClassVar = ("limit", "threads", "device", "judge_batch_size")  # a resume may change
    ranges: ClassVar = {"train_size": AT_LEAST_1, "limit": AT_LEAST_1, "k": AT_LEAST_1, "temperature": NON_NEGATIVE,
                        "top_p": Range(0, 1, open_low=True), "max_new_tokens": AT_LEAST_1, "batch_size": AT_LEAST_1,
                        "max_per_prompt": NON_NEGATIVE, "judge_threshold": PROBABILITY,
                        "judge_batch_size": AT_LEAST_1, "threads": NON_NEGATIVE}

    def check(self, prefix: str = "") -> None:
        check_device(self.device, f"{prefix}device")
        check_engine(self.engine, self.endpoint, prefix)
        if self.judge_endpoint.url and self.judge:
            raise ConfigError(f"{prefix}judge_endpoint.url: give a judge model or a judge endpoint, not both")
        if self.judge_endpoint.url:
            check_engine("openai", self.judge_endpoint, f"{prefix}judge_")
        from r1kit.environments import check_environment_options

        check_environment_options(self.environment, self.environment_modules, self.engine, prefix)
        if self.environment != "none" and (self.row_format, self.layout) != ("prompt_completion", "as_sampled"):
            raise ConfigError(f"{prefix}environment: {self.environment}: tool transcripts are written as "
                              "row_format prompt_completion, layout as_sampled (their observations masked by span)")
