"""The R1 pipeline (``r1kit pipeline recipe.yaml``): the paper's recipe as resumable stages.

``cold_start`` -> ``reasoning_rl`` -> ``rejection_sampling`` -> ``sft`` (from the base) ->
``all_scenario_rl`` (with ``reward_models``) -> optional ``distill``; plus the ``r1_zero``
baseline and an ``evaluate`` stage that tabulates every model. The stage graph, run directory,
fingerprints, markers and resumption are in :mod:`r1kit.pipeline.runner`; the stages in
:mod:`r1kit.pipeline.stages`; every option in :mod:`r1kit.pipeline.config`.
"""
from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

from r1kit.config import ConfigError, coerce, merge, parse_overrides, read_recipe, validate
from r1kit.pipeline.config import PipelineConfig, check_config
from r1kit.pipeline.runner import Pipeline, format_plan


def load_pipeline_config(path: str | Path | None = None, overrides: list[str] | None = None) -> PipelineConfig:
    """The recipe at ``path`` plus ``key=value`` overrides, applied over the defaults: a section
    the recipe gives only some keys of keeps its stage's own defaults for the rest (e.g. no periodic
    evaluation in the RL stages); a mapping-valued option (``rewards``) is replaced whole."""
    cfg = apply_over(PipelineConfig(), merge(read_recipe(path, "recipe"), parse_overrides(overrides or [])))
    check_config(cfg)
    validate(cfg)
    return cfg


def apply_over(instance, data: dict, prefix: str = ""):
    """``instance`` (a dataclass) with the values of ``data`` (nested for dataclass fields), each
    checked and coerced as :func:`r1kit.config.build` does; unknown keys are a ConfigError naming them."""
    hints = typing.get_type_hints(type(instance))
    names = [f.name for f in dataclasses.fields(instance)]
    changes = {}
    for key, value in data.items():
        if key not in names:
            raise ConfigError(f"unknown config key {prefix}{key} (known: {', '.join(sorted(names))})")
        current = getattr(instance, key)
        if dataclasses.is_dataclass(current) and isinstance(value, dict):
            changes[key] = apply_over(current, value, f"{prefix}{key}.")
        else:
            changes[key] = coerce(value, hints[key], f"{prefix}{key}")
    return dataclasses.replace(instance, **changes)


def make_pipeline(cfg: PipelineConfig, progress: bool = True) -> Pipeline:
    from r1kit.pipeline.stages import STAGES  # the trainers (torch): after the recipe is checked
    return Pipeline(cfg, cfg.out, STAGES, progress=progress)


__all__ = ["PipelineConfig", "Pipeline", "load_pipeline_config", "make_pipeline", "format_plan"]
