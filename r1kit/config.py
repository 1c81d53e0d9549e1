"""Typed configs from YAML recipes and ``key=value`` overrides.

Every stage's options live in a dataclass (defaults that run; each field documented once, in the
class). ``load_config(cls, path, overrides)`` reads a YAML recipe, applies dotted overrides such as
``grpo.beta=0.04`` and checks every key, type and range: an unknown key, a value of the wrong type,
a value out of its range or a broken cross-field rule is a ``ConfigError`` naming the key, the value
and what is allowed.

Ranges are declared beside the fields, in a class attribute ``ranges`` (field -> ``Range``), and
cross-field rules in a method ``check(prefix)``; :func:`validate` applies both, recursively, before
any model loads.
"""
from __future__ import annotations

import importlib

import dataclasses
import json
import difflib
import types
import typing
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A recipe or override names an unknown key, or gives a value of the wrong type or range."""


@dataclasses.dataclass(frozen=True)
class Range:
    """Allowed values of a number: ``low <= x`` (``low < x`` if ``open_low``), and likewise ``high``.

    ``None`` bounds are open-ended; a ``None`` value (an optional field left unset) always passes.
    """

    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False

    def allows(self, x) -> bool:
        if x is None:
            return True
        if self.low is not None and (x <= self.low if self.open_low else x < self.low):
            return False
        return not (self.high is not None and (x >= self.high if self.open_high else x > self.high))

    def __str__(self) -> str:
        parts = []
        if self.low is not None:
            parts.append(f"{'>' if self.open_low else '>='} {self.low:g}")
        if self.high is not None:
            parts.append(f"{'<' if self.open_high else '<='} {self.high:g}")
        return " and ".join(parts)


AT_LEAST_1 = Range(1)
NON_NEGATIVE = Range(0)
POSITIVE = Range(0, open_low=True)
PROBABILITY = Range(0, 1)


def class_table(cls, name: str) -> dict:
    """The class attribute ``name`` (``ranges``) merged over ``cls``'s bases, so that a config
    class that adds fields to another (``PeriodicEvalConfig(EvalConfig)``) declares only its own."""
    table: dict = {}
    for klass in reversed(cls.__mro__):
        table.update(vars(klass).get(name, {}))
    return table


def validate(config, prefix: str = "", dashes: bool = False) -> None:
    """Check ``config`` (a dataclass) and the dataclasses inside it: every ``ranges`` entry, then
    every ``check(prefix)`` rule. Raises ``ConfigError`` naming the first bad key (as a command-line
    flag, ``--top-p``, with ``dashes``)."""
    for name, rule in class_table(type(config), "ranges").items():
        value = getattr(config, name)
        values = value.items() if isinstance(value, dict) else [(None, value)]
        for sub, v in values:
            if not rule.allows(v):
                shown = name.replace("_", "-") if dashes else name
                key = f"{prefix}{shown}" + (f".{sub}" if sub is not None else "")
                raise ConfigError(f"{key}: {v!r} is out of range (allowed: {rule})")
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            validate(value, f"{prefix}{f.name}.")
        elif isinstance(value, dict):
            for key, item in value.items():
                if dataclasses.is_dataclass(item):
                    validate(item, f"{prefix}{f.name}.{key}.")
    if hasattr(config, "check"):
        config.check(prefix)


def coerce(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return coerce(value, arg, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{key}: bad value {value!r}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{key}: {value!r} is not one of {list(args)}")
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return build(tp, value, prefix=f"{key}.")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        inner = args[0] if args else Any
        items = [coerce(v, inner, f"{key}[{i}]") for i, v in enumerate(value)]
        return items if origin is list else tuple(items)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        kt, vt = args or (Any, Any)
        return {coerce(k, kt, key): coerce(v, vt, f"{key}.{k}") for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true/false, got {value!r}")
    if tp is float:
        if isinstance(value, str):  # YAML reads 1e-4 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    return value


def build(cls, data: dict, prefix: str = "", default=None):
    """Instantiate dataclass ``cls`` from a (nested) mapping, checking keys and types.

    The keys ``data`` leaves out keep their values in ``default`` (an instance of ``cls``; None:
    ``cls()``), and a nested section starts from the default's own section: a pipeline stage whose
    ``grpo`` section gives only ``optim.lr`` keeps the stage's default steps and evaluation, not
    those of a bare ``ZeroConfig``."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = [k for k in data if k not in names]
    if unknown:
        close = difflib.get_close_matches(str(unknown[0]), names, n=1)
        hint = f"did you mean {prefix}{close[0]}? " if close else ""
        raise ConfigError(f"unknown config key {prefix}{unknown[0]!s} ({hint}known: {', '.join(sorted(names))})")
    default = cls() if default is None else default
    kwargs = {}
    for k, v in data.items():
        section = getattr(default, k)
        if dataclasses.is_dataclass(hints[k]) and isinstance(v, dict) and isinstance(section, hints[k]):
            kwargs[k] = build(hints[k], v, f"{prefix}{k}.", section)
        else:
            kwargs[k] = coerce(v, hints[k], f"{prefix}{k}")
    return dataclasses.replace(default, **kwargs)


def _set_dotted(tree: dict, dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = tree
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{dotted}: {part} is not a section")
    node[leaf] = value


def parse_overrides(overrides: list[str]) -> dict:
    """Turn ``["a.b=1", "c=[x, y]"]`` into a nested dict; values are parsed as YAML scalars."""
    tree: dict = {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        key, raw = item.split("=", 1)
        _set_dotted(tree, key.strip(), yaml.safe_load(raw) if raw.strip() else "")
    return tree


def merge(base: dict, update: dict) -> dict:
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def read_recipe(path: str | Path | None, what: str = "config file") -> dict:
    """The YAML mapping at ``path`` ({} for None); ConfigError naming ``what`` and the file otherwise."""
    if path is None:
        return {}
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"{what} {p} not found")
    if p.is_dir():
        raise ConfigError(f"{what} {p} is a folder, not a YAML file")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8-sig")) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{p}{where}: not valid YAML ({problem})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: not a UTF-8 text file") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: a recipe must be a mapping of keys to values")
    return data


def given_options(path: str | Path | None = None, overrides: list[str] | None = None) -> dict:
    """The options a user gave: the YAML recipe at ``path`` with ``key=value`` overrides on top."""
    return merge(read_recipe(path), parse_overrides(overrides or []))


def load_config(cls, path: str | Path | None = None, overrides: list[str] | None = None):
    """Load ``cls`` from an optional YAML recipe plus ``key=value`` overrides, validated."""
    config = build(cls, given_options(path, overrides))
    validate(config)
    return config


def to_dict(config) -> dict:
    """The config as plain data (for config.json and the report)."""
    return dataclasses.asdict(config)


def field_docs(cls) -> dict[str, str]:
    """Each field's documentation, read from the class docstring's ``name: text`` entries (several
    fields may share one: ``temperature/top_p: ...``); a config class that adds fields to another
    documents its own, its bases theirs."""
    import re

    names = [f.name for f in dataclasses.fields(cls)]
    alt = "|".join(sorted(map(re.escape, names), key=len, reverse=True))
    entry = re.compile(rf"(?<![\w.`])((?:{alt})(?:/(?:{alt}))*): ")
    docs: dict[str, str] = {}
    for klass in (k for k in cls.__mro__ if dataclasses.is_dataclass(k)):
        text = " ".join((klass.__doc__ or "").split())
        marks = list(entry.finditer(text))
        for i, m in enumerate(marks):
            end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
            for name in m.group(1).split("/"):
                docs.setdefault(name, text[m.end():end].strip())
    return docs


def describe(cls, prefix: str = "") -> str:
    """Every key of ``cls`` (nested sections dotted) with its default and documentation."""
    import textwrap

    default = cls()
    docs = field_docs(cls)
    lines = []
    for f in dataclasses.fields(cls):
        value = getattr(default, f.name)
        if dataclasses.is_dataclass(value):
            summary = docs.get(f.name) or (type(value).__doc__ or "").strip().split("\n")[0]
            lines.append(f"{prefix}{f.name}:  (section) {summary}".rstrip())
            lines.append(describe(type(value), f"{prefix}{f.name}."))
            continue
        shown = yaml.safe_dump(to_dict(value) if dataclasses.is_dataclass(value) else value,
                               default_flow_style=True, width=10_000).strip().removesuffix("...").strip()
        lines.append(f"{prefix}{f.name} = {shown}")
        doc = docs.get(f.name)
        if doc:
            lines.append(textwrap.fill(doc, 100, initial_indent="    ", subsequent_indent="    "))
    return "\n".join(lines)


CONFIG_FILE = "config.json"  # a run's recorded options, in its folder


def recorded_config(cls, run_dir: str | Path):
    """The config a run recorded in ``run_dir/config.json`` (None when it has none)."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.exists():
        return None
    try:
        return build(cls, json.loads(path.read_text()))
    except (json.JSONDecodeError, ConfigError) as exc:
        raise ConfigError(f"{path}: cannot read the run's recorded config ({exc})") from None


def config_to_run(cls, given: dict, resume: bool):
    """The config of a command: the options ``given`` over the defaults or, with ``resume`` and a
    recorded run in the ``out`` folder, over that run's recorded ``config.json``. Validated."""
    config = build(cls, given)
    validate(config)
    recorded = recorded_config(cls, config.out) if resume else None
    if recorded is None:
        return config
    config = build(cls, merge(to_dict(recorded), given))
    validate(config)
    return config


def import_modules(names: list[str], key: str) -> None:
    """Import the user modules listed under ``key`` (``reward_modules``, ``environment_modules``:
    importing them registers their rewards or environments); ConfigError naming ``key`` and the
    module when one cannot be imported."""
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ConfigError(f"{key}: cannot import {name!r} ({exc})") from None
