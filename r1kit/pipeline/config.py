"""Typed configuration of the R1 pipeline (``r1kit pipeline recipe.yaml``). Every option is documented
here, once; the options of the trainers a stage runs are documented in their own classes
(``r1kit/grpo/config.py``, ``r1kit/sft/config.py``, ``r1kit/sampling/config.py``,
``r1kit/distill/config.py``, ``r1kit/pipeline/reward_models.py``).

Fields that the pipeline sets itself (a stage's input model, data and output folder, the template,
the seed, the GRPO rewards) must not be given inside a stage's trainer section: :func:`check_config`
refuses them, naming the field.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from r1kit.config import ConfigError
from r1kit.eval.config import EvalConfig
from r1kit.grpo.config import GRPOConfig, PeriodicEvalConfig, ZeroConfig
from r1kit.models.config import check_device
from r1kit.sampling.config import SampleConfig
from r1kit.sft.config import SFTConfig


@dataclass
class RewardModelTrainConfig:
    """Training a tiny Bradley-Terry reward model on a generated preference set.

    tokenizer: the model whose tokenizer the reward model uses (the policy's base, so it reads its
        text); empty: ``tiny-mixed`` (the pipeline sets its ``base``).
    pairs: preference pairs generated (``r1kit.data.general.preference_pairs``); 10% are held out
        to measure pair accuracy. hidden_size/num_layers: the Llama body (one scalar output).
    steps/batch_size/lr: AdamW on the Bradley-Terry loss. max_length: tokens per text. seed: data and init.
    """

    tokenizer: str = ""
    pairs: int = 2000
    hidden_size: int = 64
    num_layers: int = 2
    steps: int = 150
    batch_size: int = 32
    lr: float = 2e-3
    max_length: int = 128
    seed: int = 0


@dataclass
class ColdStartStage:
    """Stage 1, ``cold_start``: SFT of the base model on readable long chains of thought.

    data: ``synthetic`` (r1kit writes ``size`` step-by-step chains of thought in English only, for
        training problems, in the template's layout) or a JSONL/JSON/Parquet file of
        ``{problem, reasoning, answer}`` rows, formatted in the paper's cold-start layout by
        ``r1kit cold-start`` (unreadable rows dropped).
    size: rows written for ``data: synthetic``.
    sft: the SFT run (``r1kit sft`` options; model, data and out are set by the pipeline).
    """

    data: str = "synthetic"
    size: int = 1000
    sft: SFTConfig = field(default_factory=lambda: SFTConfig(epochs=2, checkpoint_every=50))


@dataclass
class ReasoningRLStage:
    """Stage 2, ``reasoning_rl``: GRPO from the cold-start model on reasoning prompts, with
    reward = accuracy + ``format_weight`` * format + ``language_weight`` * language consistency.

    language_weight: λ of the language-consistency reward (share of the chain of thought's words in
        the pipeline's ``language``); 0 leaves it out.
    format_weight: weight of the template's format reward (``format`` for r1_zero, ``format_think``
        for chat); 0 leaves it out.
    grpo: the GRPO run (``r1kit zero`` options; model, data, out, template, seed and rewards are set
        by the pipeline). Its ``data`` is the pipeline's ``reasoning_data``.
    """

    language_weight: float = 0.5
    format_weight: float = 0.5
    grpo: ZeroConfig = field(default_factory=lambda: _rl_stage_grpo())


@dataclass
class RejectionSamplingStage:
    """Stage 3, ``rejection_sampling``: sample from the reasoning-RL model, keep correct and readable
    samples (the readability filter drops mixed-language chains of thought), then add
    non-reasoning SFT data.

    non_reasoning_data: null (none), ``synthetic_general`` (r1kit's general task,
        ``r1kit.data.general.sft_rows``: ``non_reasoning_size`` rows, some unhelpful or rude, as
        real-world data is) or an SFT file (rows ``{prompt, completion}`` or ``{messages}``).
    non_reasoning_size: rows written for ``synthetic_general``.
    sample: the sampling run (``r1kit sample`` options; model, data, out, template and seed are set
        by the pipeline; its prompts are the pipeline's ``reasoning_data``).
    """

    non_reasoning_data: str | None = "synthetic_general"
    non_reasoning_size: int = 400
    sample: SampleConfig = field(default_factory=lambda: SampleConfig(train_size=1000, k=4, max_per_prompt=2))


@dataclass
class SFTStage:
    """Stage 3b, ``sft``: SFT of the *base* model (not the RL checkpoint, as in the paper) on the
    rejection-sampled plus non-reasoning data.

    sft: the SFT run (``r1kit sft`` options; model, data and out are set by the pipeline).
    """

    sft: SFTConfig = field(default_factory=lambda: SFTConfig(epochs=2, checkpoint_every=50))


@dataclass
class RewardModelsStage:
    """``reward_models``: the preference reward models of the all-scenario RL.

    helpfulness/harmlessness: a path to an HF sequence-classification model (one logit), or
        ``train``: r1kit trains a tiny Bradley-Terry model on a synthetic preference set it
        generates (``r1kit.data.general.preference_pairs``), so the stage runs offline.
        Helpfulness is scored on the final summary only, harmlessness on the whole response.
    train: options of the tiny reward models trained for ``train`` (``tokenizer`` defaults to the
        pipeline's base).
    max_length: tokens a reward model reads.
    """

    helpfulness: str = "train"
    harmlessness: str = "train"
    train: RewardModelTrainConfig = field(default_factory=RewardModelTrainConfig)
    max_length: int = 256


@dataclass
class AllScenarioRLStage:
    """Stage 4, ``all_scenario_rl``: GRPO from the SFT model over reasoning and general prompts.

    Reasoning prompts keep the rule rewards (accuracy + format + λ language consistency, weights as
    in ``reasoning_rl``); general prompts get ``helpfulness_weight`` * helpfulness (reward model, on
    the summary) + ``harmlessness_weight`` * harmlessness (reward model, on the whole response) +
    ``format_weight`` * format.

    general_data: ``synthetic_general`` (r1kit's general prompts) or a JSONL file of rows with
        ``id`` and ``problem`` (their ``kind`` is set to ``general``).
    general_fraction: share of the stage's prompts that are general.
    prompts: number of prompts in the stage's prompt pool (reasoning + general).
    language_weight/format_weight: as in ``reasoning_rl``.
    helpfulness_weight/harmlessness_weight: weights of the two reward models on general prompts.
    grpo: the GRPO run (as in ``reasoning_rl``; its data is written by the pipeline).
    """

    general_data: str = "synthetic_general"
    general_fraction: float = 0.25
    prompts: int = 4000
    language_weight: float = 0.5
    format_weight: float = 0.5
    helpfulness_weight: float = 1.0
    harmlessness_weight: float = 1.0
    grpo: ZeroConfig = field(default_factory=lambda: _rl_stage_grpo())


@dataclass
class DistillStage:
    """Optional ``distill``: SFT of each student on samples of the final model (``r1kit distill``).

    students: models fine-tuned (HF folders, hub ids, ``tiny-small``...); empty skips the stage.
    sample/sft: the distillation's sampling and SFT runs (model, data, out set by the pipeline).
    """

    students: list[str] = field(default_factory=list)
    sample: SampleConfig = field(default_factory=lambda: SampleConfig(train_size=1000, k=4, max_per_prompt=2))
    sft: SFTConfig = field(default_factory=lambda: SFTConfig(epochs=2, checkpoint_every=50))


@dataclass
class R1ZeroStage:
    """Optional ``r1_zero``: the R1-Zero baseline (GRPO straight on the base, accuracy + format),
    for the comparison table.

    enabled: run it. grpo: the GRPO run (model, out, template, seed set by the pipeline; its
        rewards default to the R1-Zero ones, accuracy 1 + format 0.5).
    """

    enabled: bool = True
    grpo: ZeroConfig = field(default_factory=lambda: _stage_grpo(steps=200))


@dataclass
class EvaluateStage:
    """Optional ``evaluate``: every model of the run (base, R1-Zero, each stage's output) on the
    held-out sets, with the paper's protocol; writes ``evaluate/table.md`` and ``table.json``.

    enabled: run it.
    reasoning: the held-out reasoning evaluation (pass@1 over k samples, cons@k, format rate,
        mean length; plus the language consistency of the chains of thought).
    general_limit: held-out general prompts (``r1kit.data.general``, at most 60; 0 skips):
        the share of helpful summaries and of rude responses, judged by rules.
    """

    enabled: bool = True
    reasoning: EvalConfig = field(default_factory=EvalConfig)
    general_limit: int = 60


@dataclass
class PipelineConfig:
    """The R1 recipe as stages (the DeepSeek-R1 paper's four-stage pipeline).

    base: the base model (HF folder, hub id, or ``tiny-mixed``: the embedded base whose pre-training
        corpus mixes languages in its chains of thought).
    out: the run directory; one folder per stage.
    seed: seeds every stage.
    template: prompt template of every stage (``r1_zero``, ``chat``, ``plain``).
    language: target language of the chains of thought (``en``, ``zh``; the language-consistency
        reward and the readability filter).
    reasoning_data: reasoning prompts of the RL and sampling stages: ``synthetic`` (r1kit's
        arithmetic training problems), a benchmark name (``math_train``, ``gsm8k_train``) or a file.
    threads: torch CPU threads of every stage (0: auto, see r1kit.threads).
    device: the device of every stage whose own ``device`` is left at ``auto``: ``auto`` (CUDA
        when visible, else the CPU), ``cpu``, ``cuda`` or ``cuda:N`` (r1kit.models.device); also
        where the evaluate stage runs.
    cold_start/reasoning_rl/rejection_sampling/sft/reward_models/all_scenario_rl/distill/r1_zero/
        evaluate: the stages (their classes above).
    """

    base: str = "tiny-mixed"
    out: str = "runs/r1"
    seed: int = 0
    template: Literal["r1_zero", "chat", "plain"] = "r1_zero"
    language: str = "en"
    reasoning_data: str = "synthetic"
    threads: int = 0
    device: str = "auto"
    cold_start: ColdStartStage = field(default_factory=ColdStartStage)
    reasoning_rl: ReasoningRLStage = field(default_factory=ReasoningRLStage)
    rejection_sampling: RejectionSamplingStage = field(default_factory=RejectionSamplingStage)
    sft: SFTStage = field(default_factory=SFTStage)
    reward_models: RewardModelsStage = field(default_factory=RewardModelsStage)
    all_scenario_rl: AllScenarioRLStage = field(default_factory=AllScenarioRLStage)
    distill: DistillStage = field(default_factory=DistillStage)
    r1_zero: R1ZeroStage = field(default_factory=R1ZeroStage)
    evaluate: EvaluateStage = field(default_factory=EvaluateStage)

    def check(self, prefix: str = "") -> None:
        check_device(self.device, f"{prefix}device")


def _rl_stage_grpo() -> ZeroConfig:
    """The default GRPO run of the two RL stages: 100 steps, checkpoints every 25."""
    return _stage_grpo(steps=100, checkpoint_every=25)


def _stage_grpo(**fields) -> ZeroConfig:
    """A pipeline stage's GRPO run: no periodic evaluation (the evaluate stage compares the models)
    and the clip range the pipeline's figures were measured with (eps_high 0.2, not clip-higher).
    Its rewards, budgets and curriculum are those of the stage's data (``ZeroConfig.resolved``)."""
    return ZeroConfig(eval=PeriodicEvalConfig(every=0), grpo=GRPOConfig(eps_high=0.2), **fields)


SET_BY_PIPELINE = {
    ZeroConfig: ("model", "data", "out", "template", "seed", "rewards", "rewards_by_kind", "reward_models"),
    SFTConfig: ("model", "data", "out"),
    SampleConfig: ("model", "data", "out", "template", "seed"),
}
TRAINER_SECTIONS = (("cold_start", "sft"), ("reasoning_rl", "grpo"), ("rejection_sampling", "sample"),
                    ("sft", "sft"), ("all_scenario_rl", "grpo"), ("distill", "sample"), ("distill", "sft"))


def check_config(cfg: PipelineConfig) -> None:
    """Refuse a trainer field that the pipeline sets itself (it would be silently replaced)."""
    for stage, section in TRAINER_SECTIONS:
        value = getattr(getattr(cfg, stage), section)
        default = getattr(type(getattr(cfg, stage))(), section)  # the stage's own default run
        for name in SET_BY_PIPELINE[type(value)]:
            if getattr(value, name) != getattr(default, name):
                raise ConfigError(f"{stage}.{section}.{name}: set by the pipeline; do not give it")
    for name in ("model", "data", "out", "template", "seed", "reward_models", "rewards_by_kind"):
        if getattr(cfg.r1_zero.grpo, name) != getattr(ZeroConfig(), name):
            raise ConfigError(f"r1_zero.grpo.{name}: set by the pipeline; do not give it")
    if not 0 <= cfg.all_scenario_rl.general_fraction < 1:
        raise ConfigError(f"all_scenario_rl.general_fraction: must be in [0, 1), got {cfg.all_scenario_rl.general_fraction}")
