"""The R1 pipeline (``r1kit pipeline recipe.yaml``): the paper's recipe as resumable stages.

``cold_start`` -> ``reasoning_rl`` -> ``rejection_sampling`` -> ``sft`` (from the base) ->
``all_scenario_rl`` (with ``reward_models``) -> optional ``distill``; plus the ``r1_zero``
baseline and an ``evaluate`` stage that tabulates every model. The stage graph, run directory,
fingerprints, markers and resumption are in :mod:`r1kit.pipeline.runner`; the stages in
:mod:`r1kit.pipeline.stages`; every option in :mod:`r1kit.pipeline.config`.
"""
from __future__ import annotations

from pathlib import Path

import yaml

from r1kit.config import ConfigError, _merge, build, parse_overrides, to_dict
from r1kit.pipeline.config import PipelineConfig, check_config
from r1kit.pipeline.runner import Pipeline, format_plan


def load_pipeline_config(path: str | Path | None = None, overrides: list[str] | None = None) -> PipelineConfig:
    """The recipe at ``path`` plus ``key=value`` overrides, merged over the defaults (so a stage's
    own trainer defaults, e.g. no periodic evaluation, survive a recipe that sets a few keys)."""
    data: dict = {}
    if path is not None:
        p = Path(path)
        if not p.exists():
            raise ConfigError(f"recipe {p} not found")
        data = yaml.safe_load(p.read_text()) or {}
        if not isinstance(data, dict):
            raise ConfigError(f"{p}: a recipe must be a mapping of keys to values")
    given = _merge(data, parse_overrides(overrides or []))
    _check_keys(given, to_dict(PipelineConfig()), "")
    cfg = build(PipelineConfig, _merge(to_dict(PipelineConfig()), given))
    check_config(cfg)
    return cfg


def _check_keys(given: dict, defaults: dict, prefix: str) -> None:
    """An unknown key is an error naming it (before merging, which would hide nothing but is clearer)."""
    for key, value in given.items():
        if key not in defaults:
            raise ConfigError(f"unknown config key {prefix}{key} (known: {', '.join(sorted(defaults))})")
        if isinstance(value, dict) and isinstance(defaults[key], dict) and defaults[key]:
            _check_keys(value, defaults[key], f"{prefix}{key}.")


def make_pipeline(cfg: PipelineConfig, progress: bool = True) -> Pipeline:
    from r1kit.pipeline.stages import STAGES

    return Pipeline(cfg, cfg.out, STAGES, progress=progress)


__all__ = ["PipelineConfig", "Pipeline", "load_pipeline_config", "make_pipeline", "format_plan"]
