"""r1kit: train reasoning language models the DeepSeek-R1 way (see README.md)."""
from __future__ import annotations

import importlib
from typing import Callable

__version__ = "0.1.0"


def lazy_attributes(package: str, where: dict[str, str]) -> Callable[[str], object]:
    """A package's module ``__getattr__`` that imports ``name`` from ``package.<where[name]>`` on
    first use: a package keeps its config importable without the torch code beside it, so that a
    command checks its options before any model code loads."""
    def __getattr__(name: str):
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{where[name]}"), name)
    return __getattr__
