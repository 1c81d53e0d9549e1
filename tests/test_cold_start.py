"""Cold-start data: the readable layout, the readability filter, the command line."""
import json
import subprocess
import sys

from r1kit.data.cold_start import ColdStartConfig, format_cold_start, readable_reasoning, to_cold_start
from r1kit.prompts import COLD_START_MARKER, r1_zero_prompt
from r1kit.rewards import REWARD_FUNCS

ROWS = [
    {"id": "ok", "problem": "Compute 3 + 4 - 2", "reasoning": "3 + 4 = 7.  \n\n\n\n7 - 2 = 5.\n", "answer": "5"},
    {"id": "mixed", "problem": "Compute 1 + 1", "reasoning": "1 + 1 = 2, 所以答案是二", "answer": "2"},
    {"id": "code", "problem": "Compute 2 + 2", "reasoning": "```python\nprint(2 + 2)\n```", "answer": "4"},
    {"id": "loop", "problem": "Compute 5 + 5", "reasoning": "let me add five and five again. " * 8, "answer": "10"},
    {"id": "long", "problem": "Compute 6 + 6", "reasoning": "six plus six " * 400, "answer": "12"},
    {"id": "empty", "problem": "Compute 7 + 7", "reasoning": "  \n ", "answer": "14"},
    {"id": "zh", "problem": "计算 2 + 3", "reasoning": "二加三等于五", "answer": "5", "language": "zh",
     "summary": "答案是 $\\boxed{5}$"},
]


def test_layout_is_reasoning_between_markers_then_a_summary():
    row = format_cold_start(ROWS[0])
    assert row["prompt"] == r1_zero_prompt("Compute 3 + 4 - 2")
    assert row["completion"] == (f" {COLD_START_MARKER}3 + 4 = 7.\n\n7 - 2 = 5.{COLD_START_MARKER}"
                                 "The final answer is $\\boxed{5}$.")
    assert REWARD_FUNCS["accuracy_math"](row["completion"], {"answer": "5"}) == 1.0
    chat = format_cold_start(ROWS[6], ColdStartConfig(row_format="messages"))
    assert chat["messages"][0] == {"role": "user", "content": "计算 2 + 3"}
    assert chat["messages"][1]["content"].endswith(f"{COLD_START_MARKER}答案是 $\\boxed{{5}}$")
    assert readable_reasoning("a  \r\n\r\n\r\n\r\nb\n") == "a\n\nb"
    assert to_cold_start(" <think> 1 + 1 = 2. </think> <answer> 2 </answer>") == (
        f"{COLD_START_MARKER}1 + 1 = 2.{COLD_START_MARKER}<answer> 2 </answer>")
    assert to_cold_start("no think tags") is None


def test_command_filters_and_counts_every_row(tmp_path):
    data = tmp_path / "cot.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in ROWS))
    out = tmp_path / "cs"
    proc = subprocess.run([sys.executable, "-m", "r1kit.cli", "cold-start", "--data", str(data), "--out", str(out),
                           "template=plain"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    stats = json.loads((out / "stats.json").read_text())
    assert stats["rejected"] == {"empty_reasoning": 1, "mixed_language": 1, "long_paragraph": 1,
                                 "code_block": 1, "repetition": 1}
    assert stats["kept"] + stats["rejected_total"] == stats["rows"] == 7
    kept = [json.loads(line) for line in (out / "sft.jsonl").read_text().splitlines()]
    assert [r["id"] for r in kept] == ["ok", "zh"]
    assert kept[0]["prompt"] == "Compute 3 + 4 - 2"
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"problem": "p", "answer": "1"}\n')
    proc = subprocess.run([sys.executable, "-m", "r1kit.cli", "cold-start", "--data", str(bad), "--out", str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "bad.jsonl:1: missing field 'reasoning'" in proc.stderr
