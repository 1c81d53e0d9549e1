"""Rejection sampling: verdicts by reason add up, kept samples are correct, resumption never duplicates."""
import json

import pytest

from r1kit.config import ConfigError, load_config
from r1kit.data.jsonl import DataError
from r1kit.data.readability import (ReadabilityConfig, language_share, longest_paragraph, readability_issue,
                                    repetition_share)
from r1kit.rewards import REWARD_FUNCS
from r1kit.sampling import REJECTION_REASONS, RejectionSampler, SampleConfig, run_sample
from r1kit.sampling.rejection import verdicts

SMALL = ["k=4", "batch_size=4", "max_new_tokens=64", "threads=1"]


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def _cfg(out, *extra):
    return load_config(SampleConfig, None, SMALL + [f"out={out}", *extra])


def _no_seconds(rows):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


def test_readability_checks():
    clean = "7 + 5 = 12. 12 - 3 = 9.\n\nSo the result is 9."
    assert readability_issue(clean) is None
    assert readability_issue("<think> 所以 7 + 5 = 12, donc the answer </think>") == "mixed_language"
    assert language_share("所以 the answer", "zh") == pytest.approx(2 / 4)
    assert readability_issue("所以答案是十二", example={"language": "zh"}) is None
    assert readability_issue("word " * 500) == "long_paragraph"
    assert longest_paragraph("a b\n\n" + "c" * 30 + "\n \nd") == 30
    code = "Let me write it:\n```python\nprint(12)\n```"
    assert readability_issue(code) == "code_block"
    assert readability_issue(code, example={"tests": [{"input": "", "output": "12"}]}) is None
    loop = "wait, let me check: 7 + 5 = 12. " * 6
    assert repetition_share(loop, 8) > 0.7 and readability_issue(loop) == "repetition"
    assert readability_issue(loop, ReadabilityConfig(max_repetition=1.0)) is None


def test_verdicts_by_rule():
    cfg = load_config(SampleConfig, None, ["max_per_prompt=2"])
    texts = ["a ok", "b wrong", "a  ok", "c ok", "d ok", "e 所以 mixed 中文", "f cut"]
    early = [None, None, None, None, None, None, "truncated"]
    correct = [True, False, True, True, True, True, None]
    assert verdicts(texts, early, correct, {}, cfg) == [
        None, "incorrect", "duplicate", None, "over_cap", "mixed_language", "truncated"]
    assert verdicts(["x"], [None], [None], {}, cfg) == ["unverifiable"]


def test_sample_end_to_end_stats_add_up_and_kept_samples_are_correct(tmp_path):
    out = tmp_path / "s"
    stats = run_sample(_cfg(out, "limit=12", "max_per_prompt=2"), progress=False)
    assert stats["sampled"] == 12 * 4 and stats["prompts"] == 12
    assert set(stats["rejected"]) == set(REJECTION_REASONS)
    assert stats["kept"] + stats["rejected_total"] == stats["sampled"]
    assert stats["rejected_total"] == sum(stats["rejected"].values())
    assert 0 < stats["kept"] < stats["sampled"] and stats["rejected"]["incorrect"] > 0
    rows = _rows(out / "sft.jsonl")
    assert len(rows) == stats["kept"] == json.loads((out / "stats.json").read_text())["kept"]
    by_prompt = {}
    for row in rows:
        assert REWARD_FUNCS["accuracy_math"](row["completion"], row) == 1.0
        assert REWARD_FUNCS["format"](row["completion"], row) == 1.0
        assert row["prompt"].endswith(". Assistant:") and "Compute" in row["prompt"]
        by_prompt.setdefault(row["source_id"], []).append(" ".join(row["completion"].split()))
    assert all(len(texts) <= 2 and len(set(texts)) == len(texts) for texts in by_prompt.values())
    progress = _rows(out / "progress.jsonl")
    assert [p["kept"] for p in progress if p["kept"]] == [len(by_prompt[p["id"]]) for p in progress if p["kept"]]
    assert all(p["kept"] + sum(p["rejected"].values()) == p["sampled"] for p in progress)


def test_extending_and_crash_recovery_match_an_uninterrupted_run(tmp_path):
    full = tmp_path / "full"
    run_sample(_cfg(full, "limit=10"), progress=False)
    expected_sft, expected_progress = _rows(full / "sft.jsonl"), _no_seconds(_rows(full / "progress.jsonl"))

    # a finished run of 8 prompts (two whole chunks), extended to 10 with --resume
    ext = tmp_path / "ext"
    run_sample(_cfg(ext, "limit=8"), progress=False)
    with pytest.raises(ConfigError, match="already holds"):
        RejectionSampler(_cfg(ext, "limit=10"), progress=False)
    with pytest.raises(ConfigError, match="k: 4 -> 2"):
        RejectionSampler(_cfg(ext, "limit=10", "k=2"), resume=True, progress=False)
    run_sample(_cfg(ext, "limit=10"), resume=True, progress=False)
    assert _rows(ext / "sft.jsonl") == expected_sft
    assert _no_seconds(_rows(ext / "progress.jsonl")) == expected_progress

    # a crash in the middle of prompt 7: its SFT rows were written, its progress line was not,
    # and the line being written was torn
    crash = tmp_path / "crash"
    crash.mkdir()
    done = expected_progress[:6]
    (crash / "progress.jsonl").write_text("".join(json.dumps(p) + "\n" for p in done) + '{"id": "synth')
    partial = [r for r in expected_sft if r["source_id"] in {p["id"] for p in expected_progress[:7]}]
    partial.append({**partial[-1], "id": "orphan", "source_id": expected_progress[6]["id"]})
    (crash / "sft.jsonl").write_text("".join(json.dumps(r) + "\n" for r in partial))
    (crash / "config.json").write_text((full / "config.json").read_text())
    stats = run_sample(_cfg(crash, "limit=10"), resume=True, progress=False)
    assert _rows(crash / "sft.jsonl") == expected_sft
    assert _no_seconds(_rows(crash / "progress.jsonl")) == expected_progress
    ids = [p["id"] for p in _rows(crash / "progress.jsonl")]
    assert len(ids) == len(set(ids)) == 10
    assert stats["kept"] + stats["rejected_total"] == stats["sampled"] == 40


def test_judge_grades_general_rows_with_a_real_model(tmp_path, tiny_path):
    from r1kit.sampling.judge import Judge

    judge = Judge(tiny_path)
    items = [("Compute 3 + 4", "7", " <think> 3 + 4 = 7. </think> <answer> 7 </answer>"),
             ("Name the capital of France", "Paris", "<think> hmm </think> It is Paris.")]
    p = judge.p_yes(items)
    assert len(p) == 2 and all(0.0 <= x <= 1.0 for x in p)
    assert p == judge.p_yes(items)  # one deterministic forward, no sampling
    assert judge.accepts(items) == [x >= 0.5 for x in p]

    data = tmp_path / "general.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in [
        {"id": "g1", "problem": "Compute 2 + 2", "kind": "general", "reference": "4"},
        {"id": "g2", "problem": "Compute 5 + 1", "reference": "6"},  # no answer: general too
        {"id": "m1", "problem": "Compute 1 + 1", "answer": "2"}]))
    stats = run_sample(_cfg(tmp_path / "j", f"data={data}", f"judge={tiny_path}", "judge_threshold=0.0"),
                       progress=False)
    screened = 8 - stats["rejected"]["truncated"] - stats["rejected"]["bad_format"]
    assert stats["judged"] > 0 and stats["judged"] <= 8
    assert stats["judge_accepted"] == stats["judged"]  # threshold 0 accepts every judged sample
    assert stats["rejected"]["unverifiable"] == 0 and stats["kept"] + stats["rejected_total"] == 12
    progress = {p["id"]: p for p in _rows(tmp_path / "j" / "progress.jsonl")}
    assert progress["m1"]["judged"] == 0 and progress["g1"]["judged"] + progress["g2"]["judged"] == stats["judged"]
    assert screened >= stats["judged"]
    # without a judge the same rows cannot be graded
    stats = run_sample(_cfg(tmp_path / "nj", f"data={data}"), progress=False)
    assert stats["judged"] == 0 and stats["rejected"]["unverifiable"] > 0


def test_cold_start_layout_and_messages_rows(tmp_path):
    out = tmp_path / "cs"
    run_sample(_cfg(out, "limit=8", "layout=cold_start", "row_format=messages"), progress=False)
    rows = _rows(out / "sft.jsonl")
    assert rows
    for row in rows:
        user, assistant = row["messages"]
        assert user["role"] == "user" and user["content"].startswith("Compute")
        text = assistant["content"]
        assert text.startswith("|special_token|") and text.count("|special_token|") == 2
        assert "<think>" not in text and REWARD_FUNCS["accuracy_math"](text, row) == 1.0


def test_bad_inputs_are_clear_errors(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text('{"id": "a", "problem": "p", "answer": "1"}\n{"id": "b"}\n')
    with pytest.raises(DataError, match=r"d\.jsonl:2: missing field 'problem'"):
        RejectionSampler(_cfg(tmp_path / "o", f"data={data}"), progress=False)
    data.write_text('{"id": "a", "problem": "p", "answer": "1"}\n{"id": "a", "problem": "q", "answer": "2"}\n')
    with pytest.raises(DataError, match="repeated id"):
        RejectionSampler(_cfg(tmp_path / "o", f"data={data}"), progress=False)
    with pytest.raises(ConfigError, match="reward"):
        RejectionSampler(_cfg(tmp_path / "o", "reward=nope"), progress=False)


def test_tool_transcripts_keep_their_observations_masked_for_sft(tmp_path, tiny):
    """``environment``: kept rows are whole episodes whose observation spans ``r1kit sft`` leaves out
    of the loss: the tokenized row's labels skip exactly the observation tokens."""
    import sys
    from pathlib import Path

    from r1kit.sft.data import IGNORE, tokenize_row

    sys.path.insert(0, str(Path(__file__).parent))
    _, tok = tiny
    out = tmp_path / "s"
    stats = run_sample(_cfg(out, "limit=8", "tools.max_turns=2", "keep_truncated=true", "environment=test_think", "environment_modules=[helpers.think_env]",
                            "format_reward=none", "reward=test_called", "max_per_prompt=4", "temperature=1.0"), progress=False)
    rows = _rows(out / "sft.jsonl")
    assert stats["kept"] == len(rows) > 0
    masked = [row for row in rows if row.get("masked")]
    assert len(masked) >= 3  # kept episodes that made calls
    for row in masked:
        spans = [row["completion"][a:b] for a, b in row["masked"]]
        assert all(text == f"<output>{row['answer']}</output>" for text in spans), spans  # the observations
        example = tokenize_row(row, tok)
        skipped = [t for t, label in zip(example.input_ids, example.labels) if label == IGNORE]
        n_prompt = len(tok(row["prompt"], add_special_tokens=False)["input_ids"])
        observed = [t for text in spans for t in tok(text, add_special_tokens=False)["input_ids"]]
        assert skipped[1:] == example.input_ids[1:n_prompt] + observed  # the prompt, then the observations
    with pytest.raises(ConfigError, match="environment: test_think: tool transcripts are written as row_format"):
        _cfg(out, "environment=test_think", "environment_modules=[helpers.think_env]", "row_format=messages")
