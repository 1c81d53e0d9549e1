"""Row files (JSONL/JSON/Parquet) and benchmark loading."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from r1kit.data import benchmarks
from r1kit.data.benchmarks import BENCHMARKS, load_problems
from r1kit.data.jsonl import DataError, append_jsonl, read_jsonl, read_rows, require_fields, write_jsonl

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def test_shared_data_present():
    assert (DATA / "math500.jsonl").is_file(), f"benchmark data expected in {DATA}"


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
def test_load_benchmarks(name, rows):
    problems = load_problems(name, data_dir=DATA)
    assert len(problems) == rows
    assert all(p["id"] and p["problem"] and p["answer"] for p in problems)
    assert len(load_problems(name, data_dir=DATA, limit=7)) == 7


def test_default_data_dir_finds_shared_data(monkeypatch):
    monkeypatch.delenv("R1KIT_DATA_DIR", raising=False)
    assert benchmarks._find_data_dir().resolve() == DATA.resolve()
    monkeypatch.setenv("R1KIT_DATA_DIR", "/somewhere/else")
    assert benchmarks._find_data_dir() == Path("/somewhere/else")
    assert set(BENCHMARKS) == {"math500", "aime2024", "gsm8k", "gsm8k_train", "math_train"}


def test_missing_benchmark_file_says_where(tmp_path):
    with pytest.raises(DataError, match=r"math500\.jsonl not found in data dir .*R1KIT_DATA_DIR"):
        load_problems("math500", data_dir=tmp_path)


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
