"""Rejection sampling (DeepSeek-R1 stage 3; ``r1kit sample``).

:class:`SampleConfig` (every option, documented once), :func:`run_sample` / :class:`RejectionSampler`
(sample k per prompt, grade with the rule rewards or a judge model, filter for readability,
deduplicate, cap, write SFT rows and ``stats.json``; resumable), :mod:`r1kit.sampling.judge`.
"""
from r1kit import lazy_attributes
from r1kit.sampling.config import SampleConfig

__all__ = ["REJECTION_REASONS", "RejectionSampler", "SampleConfig", "run_sample"]
__getattr__ = lazy_attributes(__name__, {name: "rejection" for name in ("REJECTION_REASONS", "RejectionSampler",
                                                                        "run_sample")})
