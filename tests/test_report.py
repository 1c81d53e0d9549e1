"""Tests of ``r1kit.report.write_report`` (the ``r1kit report RUN_DIR`` command).

The browser test loads the page in a real headless Chromium and needs the
binary on PATH; install it with ``apt-get install -y chromium``.
"""

from __future__ import annotations

import json
import math
import random
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from r1kit.report import ReportWarning, write_report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
IMAGES = ["accuracy.png", "length.png", "reflection.png", "reflection_accuracy.png", "language.png",
          "rewards.png", "training.png"]
BROWSERS = ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"]
SYSTEM_PROMPT = 'Reason inside <think> ... </think> & answer in <answer> "tags"'


def make_run(run_dir: Path, steps: int = 60, eval_every: int = 10, *, metrics: bool = True,
             evals: bool = True, summary: bool = False) -> Path:
    """Write a realistic GRPO run directory, each jsonl ending in a line cut mid-write."""
    rng = random.Random(0)
    run_dir.mkdir(parents=True, exist_ok=True)
    if metrics:
        with open(run_dir / "metrics.jsonl", "w") as f:
            for step in range(1, steps + 1):
                acc = 0.1 + 0.6 * (1 - math.exp(-step / 20)) + rng.gauss(0, 0.05)
                fmt = min(1.0, 0.3 + step / 30)
                row = {
                    "step": step, "reward/mean": acc + 0.5 * fmt, "reward/std": 0.3,
                    "reward/accuracy_math/mean": acc, "reward/format/mean": fmt,
                    "accuracy": acc, "format_rate": fmt,
                    "response_length/mean": 120 + 5 * step + rng.gauss(0, 8),
                    "response_length/max": 1024, "truncated_frac": 0.02,
                    "kl": 0.002 * step, "entropy": 0.9 - 0.004 * step, "clip_frac": 0.01 + 0.01 * rng.random(),
                    "grad_norm": 0.5 + rng.random(), "lr": 1e-6, "tokens_per_s": 9000 + rng.gauss(0, 200),
                    "step_seconds": 3.5, "reflection_rate": 0.02 + step / 200,
                    "accuracy_reflective": acc + 0.1, "accuracy_non_reflective": acc - 0.1,
                    "reflection_fixes": 0.1, "length_correct": 100 + 5 * step, "length_incorrect": 130,
                    "language_consistency": 0.8 + step / 600, "language_mixing_rate": 0.4 - step / 300,
                }
                f.write(json.dumps(row) + "\n")
            f.write('{"step": %d, "reward/mean": 0.7' % (steps + 1))  # killed mid-write
    if evals:
        with open(run_dir / "eval.jsonl", "w") as f:
            for step in range(0, steps + 1, eval_every):
                row = {"step": step, "pass@1": 0.1 + 0.5 * step / steps, "cons@8": 0.15 + 0.6 * step / steps,
                       "k": 8, "mean_length": 120 + 5 * step, "format_rate": 0.95,
                       "reflection_rate": 0.01 + step / 200, "accuracy_reflective": 0.6,
                       "accuracy_non_reflective": 0.3, "reflection_fixes": 0.05, "length_correct": 110 + 5 * step,
                       "length_incorrect": 140, "language_consistency": 0.9, "language_mixing_rate": 0.2}
                f.write(json.dumps(row) + "\n")
            f.write('{"step": 9')
    config = {"model": {"name": "tiny-gpt", "dtype": "float32"},
              "grpo": {"group_size": 8, "beta": 0.0, "clip_eps": 0.2},
              "prompt": {"system": SYSTEM_PROMPT}}
    (run_dir / "config.json").write_text(json.dumps(config))
    if summary:
        (run_dir / "summary.json").write_text(json.dumps({"final_pass@1": 0.6123, "final_cons@8": 0.75,
                                                           "wall_hours": 1.25}))
    return run_dir


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk; asserts the file is a PNG."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    """One full report, shared by the tests that only read it."""
    run = make_run(tmp_path_factory.mktemp("runs") / "grpo-tiny-run")
    with pytest.warns(ReportWarning, match="unparsable"):
        index = write_report(run)
    return index


def test_writes_index_and_valid_pngs(report: Path):
    assert report.name == "index.html"
    assert report.parent.name == "report"
    for name in IMAGES:
        path = report.parent / name
        assert path.is_file(), name
        width, height = png_size(path)
        assert width >= 300 and height >= 200, (name, width, height)
        assert path.stat().st_size > 10_000, f"{name} is suspiciously small"


def test_html_references_images_and_escapes_config(report: Path):
    page = report.read_text(encoding="utf-8")
    assert "<title>r1kit report: grpo-tiny-run</title>" in page
    for name in IMAGES:
        assert re.search(rf'<img src="{re.escape(name)}" alt="[^"]+"', page), name
    assert "&lt;think&gt;" in page and "&amp; answer" in page
    assert "<think>" not in page and "<answer>" not in page
    assert '"group_size": 8' in page  # pretty-printed JSON
    # No external resources: the page must work offline.
    assert not re.search(r'(src|href)="(https?:)?//', page)
    # Final figures from the last valid rows (the cut lines are skipped).
    assert "last evaluation (step 60)" in page and "last training step (step 60)" in page
    assert "cons@8" in page


def test_first_last_table_opens_the_page(report: Path):
    """One table, before the figures and plots: every phenomenon figure at the first and last
    evaluation, rates in % with the change in points, lengths with the change as a ratio."""
    page = report.read_text(encoding="utf-8")
    assert page.count("<table id=\"before-after\">") == 1 and page.count('id="phenomena"') == 1
    assert page.index('id="phenomena"') < page.index("Final figures") < page.index("<h2>Plots</h2>")
    table = re.search(r'<section id="phenomena">.*?</section>', page, re.S).group(0)
    assert "<th>held-out evaluation</th><th>step 0</th><th>step 60</th><th>change</th>" in table
    row = re.search(r"<th>length of correct responses</th>(.*?)</tr>", table).group(1)
    assert re.findall(r'<td class="num">([^<]*)</td>', row) == ["110.0", "410.0", "3.73x"]
    for label in ("pass@1", "cons@8", "reflection rate", "accuracy with reflection", "language mixing rate"):
        assert f"<th>{label}</th>" in table, label
    assert "points" not in table


def test_summary_json_is_shown(tmp_path: Path):
    run = make_run(tmp_path / "run", steps=12, eval_every=4, summary=True)
    with pytest.warns(ReportWarning):
        page = write_report(run).read_text()
    assert "final_pass@1" in page and "0.6123" in page


def test_missing_eval_makes_what_it_can(tmp_path: Path):
    run = make_run(tmp_path / "run", steps=12, evals=False)
    with pytest.warns(ReportWarning):
        index = write_report(run)
    page = index.read_text()
    assert "eval.jsonl is missing" in page
    assert "<caption>training batch, first vs last</caption>" in page  # the table falls back to metrics
    for name in IMAGES:  # all drawable from metrics alone (accuracy from the training batches)
        assert (index.parent / name).is_file()


def test_missing_metrics_makes_what_it_can(tmp_path: Path):
    run = make_run(tmp_path / "run", steps=12, eval_every=4, metrics=False)
    with pytest.warns(ReportWarning):
        index = write_report(run)
    page = index.read_text()
    assert "metrics.jsonl is missing" in page
    for name in ["accuracy.png", "length.png", "reflection.png"]:
        png_size(index.parent / name)
    for name in ["rewards.png", "training.png"]:
        assert not (index.parent / name).exists()
        assert f"{name} not drawn" in page
        assert f'src="{name}"' not in page


def test_missing_run_dir_raises(tmp_path: Path):
    missing = tmp_path / "no-such-run"
    with pytest.raises(FileNotFoundError, match="no-such-run"):
        write_report(missing)
    empty = tmp_path / "empty-run"
    empty.mkdir()
    (empty / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="empty-run"):
        write_report(empty)


def find_browser() -> str:
    """Path of a Chromium-family browser, failing the test (never skipping) when none is installed."""
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    pytest.fail("no headless browser found (looked for " + ", ".join(BROWSERS) + " on PATH); "
                "install one with: apt-get install -y chromium")


def run_browser(browser: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    """Run the browser headless with a private profile; returns the finished process."""
    cmd = [browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           "--no-first-run", "--hide-scrollbars", f"--user-data-dir={profile}",
           "--virtual-time-budget=5000", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_page_loads_in_headless_browser(report: Path, tmp_path: Path):
    browser = find_browser()
    url = report.resolve().as_uri()

    dom = run_browser(browser, tmp_path / "profile", "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    match = re.search(r'id="img-status" data-loaded="(\d+)" data-total="(\d+)"', dom.stdout)
    assert match, "the page's load script did not run:\n" + dom.stdout[-2000:] + dom.stderr[-2000:]
    loaded, total = map(int, match.groups())
    assert total == len(IMAGES)
    assert loaded == total, f"only {loaded} of {total} images loaded in {browser}"

    shot = tmp_path / "report.png"
    result = run_browser(browser, tmp_path / "profile", "--window-size=1200,2600",
                         f"--screenshot={shot}", url)
    assert result.returncode == 0, result.stderr[-2000:]
    assert shot.is_file()
    width, height = png_size(shot)
    assert (width, height) == (1200, 2600)
    assert shot.stat().st_size > 50_000  # a blank page would compress to a few KB


def test_tool_probes_are_plotted_only_when_present(tmp_path: Path):
    plain = make_run(tmp_path / "plain", steps=20)
    write_report(plain)
    assert not (plain / "report" / "tools.png").exists()
    tooled = make_run(tmp_path / "tools", steps=20)
    rows = [json.loads(line) for line in (tooled / "metrics.jsonl").read_text().splitlines()[:-1]]
    with open(tooled / "metrics.jsonl", "w") as f:
        for row in rows:
            rate = row["step"] / 20
            f.write(json.dumps({**row, "tool_call_rate": rate, "tool_calls_mean": rate, "turns_mean": 1 + rate,
                                "tool_error_rate": 0.1, "accuracy_with_tool": 0.9, "accuracy_without_tool": 0.1}) + "\n")
    index = write_report(tooled)
    for name in ("tools.png", "tools_accuracy.png"):
        png_size(tooled / "report" / name)
        assert name in Path(index).read_text()
