"""The ``language_consistency`` reward: :func:`r1kit.data.language.language_consistency` (the share
of the chain of thought's words in the example's ``language``; rules in that module)."""
from __future__ import annotations

from r1kit.data.language import language_consistency
from r1kit.rewards import register

register("language_consistency")(language_consistency)
