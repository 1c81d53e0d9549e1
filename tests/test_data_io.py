"""Row files (JSONL/JSON/Parquet) and benchmark loading."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from r1kit.data.benchmarks import BENCHMARKS, SHIPPED, SHIPPED_DIR, load_problems
from r1kit.data.jsonl import DataError, append_jsonl, read_jsonl, read_rows, require_fields, write_jsonl


def test_shipped_benchmarks_match_their_checksums():
    sums = dict(reversed(line.split()) for line in (SHIPPED_DIR / "SHA256SUMS").read_text().splitlines())
    assert sorted(sums) == sorted(BENCHMARKS[name] for name in SHIPPED)
    for filename, digest in sums.items():
        assert hashlib.sha256((SHIPPED_DIR / filename).read_bytes()).hexdigest() == digest, filename


def test_roundtrip_and_append(tmp_path):
    path = tmp_path / "sub" / "dir" / "rows.jsonl"
    write_jsonl(path, [{"id": "a", "x": "é∑"}, {"id": "b", "x": 2}])
    append_jsonl(path, {"id": "c"})
    assert read_jsonl(path) == [{"id": "a", "x": "é∑"}, {"id": "b", "x": 2}, {"id": "c"}]
    assert path.read_text(encoding="utf-8").count("\n") == 3


def test_blank_lines_skipped(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"id": 1}\n\n   \n{"id": 2}\n', encoding="utf-8")
    assert [r["id"] for r in read_jsonl(path)] == [1, 2]


def test_broken_line_names_file_and_line(tmp_path):
    path = tmp_path / "data.jsonl"
    lines = ['{"id": %d}' % i for i in range(6)] + ['{"id": 6 "problem": "x"}', '{"id": 7}']
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"data\.jsonl:7: invalid JSON \(Expecting ','"):
        read_jsonl(path)


def test_non_object_line_is_an_error(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text('{"id": 1}\n[1, 2]\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"data\.jsonl:2: expected a JSON object, got list"):
        read_jsonl(path)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_jsonl(tmp_path / "nope.jsonl")
    with pytest.raises(DataError, match="not found"):
        read_rows(tmp_path / "nope.json")


def test_require_fields_names_file_line_and_field():
    rows = [{"id": "1", "answer": "2"}, {"id": "2"}]
    with pytest.raises(DataError, match=r"rows\.jsonl:2: missing field 'answer'"):
        require_fields(rows, ["id", "answer"], "rows.jsonl")
    require_fields(rows[:1], ["id", "answer"], "rows.jsonl")


def test_read_rows_json_and_types(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps([{"id": 1}, {"id": 2}]), encoding="utf-8")
    assert len(read_rows(tmp_path / "a.json")) == 2
    (tmp_path / "b.json").write_text(json.dumps({"id": 1}), encoding="utf-8")
    with pytest.raises(DataError, match="expected a JSON list"):
        read_rows(tmp_path / "b.json")
    (tmp_path / "c.csv").write_text("id\n1\n", encoding="utf-8")
    with pytest.raises(DataError, match="unsupported file type"):
        read_rows(tmp_path / "c.csv")


def test_read_rows_parquet(tmp_path):
    path = tmp_path / "rows.parquet"
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        path.write_bytes(b"PAR1")
        with pytest.raises(DataError, match="pyarrow"):
            read_rows(path)
        return
    pq.write_table(pa.Table.from_pylist([{"id": "1", "problem": "p", "answer": "3"}]), path)
    assert read_rows(path) == [{"id": "1", "problem": "p", "answer": "3"}]


@pytest.mark.parametrize("name,rows", [("math500", 500), ("aime2024", 30), ("gsm8k", 1319)])
def test_load_shipped_benchmarks(name, rows, monkeypatch):
    monkeypatch.delenv("R1KIT_DATA_DIR", raising=False)
    problems = load_problems(name)
    assert len(problems) == rows
    assert all(p["id"] and p["problem"] and p["answer"] for p in problems)
    assert len(load_problems(name, limit=7)) == 7


def _folder_with(path: Path, filename: str, n: int) -> Path:
    write_jsonl(path / filename, [{"id": f"{path.name}-{i}", "problem": "1+1", "answer": "2"} for i in range(n)])
    return path


def test_resolution_order_data_dir_then_env_then_shipped(tmp_path, monkeypatch):
    given = _folder_with(tmp_path / "given", "math500.jsonl", 1)
    env = _folder_with(tmp_path / "env", "math500.jsonl", 2)
    monkeypatch.setenv("R1KIT_DATA_DIR", str(env))
    assert [p["id"] for p in load_problems("math500", data_dir=given)] == ["given-0"]
    assert [p["id"] for p in load_problems("math500")] == ["env-0", "env-1"]
    monkeypatch.delenv("R1KIT_DATA_DIR")
    assert len(load_problems("math500")) == 500


def test_a_named_folder_without_the_file_is_an_error_not_a_fallback(tmp_path, monkeypatch):
    monkeypatch.delenv("R1KIT_DATA_DIR", raising=False)
    with pytest.raises(DataError, match=r"math500\.jsonl not found in data dir .*--data-dir.*shipped copy"):
        load_problems("math500", data_dir=tmp_path)
    monkeypatch.setenv("R1KIT_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError, match=r"gsm8k_test\.jsonl not found in data dir .*\$R1KIT_DATA_DIR"):
        load_problems("gsm8k")


def test_training_sets_need_a_data_folder_and_the_error_says_how(tmp_path, monkeypatch):
    monkeypatch.delenv("R1KIT_DATA_DIR", raising=False)
    assert set(BENCHMARKS) == {"math500", "aime2024", "gsm8k", "gsm8k_train", "math_train"}
    with pytest.raises(DataError, match=r"'math_train' is not shipped.*--data-dir.*R1KIT_DATA_DIR.*math_train\.jsonl"):
        load_problems("math_train")
    assert len(load_problems("gsm8k_train", data_dir=_folder_with(tmp_path, "gsm8k_train.jsonl", 3))) == 3


def test_unknown_spec():
    with pytest.raises(DataError, match="unknown problem set 'mathh500'.*math500"):
        load_problems("mathh500")


def test_synthetic_and_path_specs(tmp_path):
    problems = load_problems("synthetic", limit=5)
    assert len(problems) == 5 and all({"id", "problem", "answer"} <= p.keys() for p in problems)
    path = tmp_path / "mine.jsonl"
    write_jsonl(path, [{"id": "a", "problem": "1+1", "answer": "2"}, {"id": "b", "problem": "2+2"}])
    with pytest.raises(DataError, match=r"mine\.jsonl:2: missing field 'answer'"):
        load_problems(str(path))
