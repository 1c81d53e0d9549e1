"""Grade free-form responses against a problem set (the ``r1kit grade`` command).

Responses are rows ``{"id", "response"}``, several per id allowed (k samples per problem). Each
response's answer is extracted (lenient rules by default, see :mod:`r1kit.rewards.math`) and
compared with the problem's ``answer`` by mathematical equivalence; the results follow the
evaluation protocol (:func:`r1kit.eval.metrics.summarize`).
"""
from __future__ import annotations

from pathlib import Path

from tqdm import tqdm

from r1kit.data.benchmarks import load_problems
from r1kit.data.jsonl import DataError, read_rows, require_fields, write_json_atomic, write_jsonl
from r1kit.eval.metrics import summarize
from r1kit.rewards.math import VERIFY_FAILURES, answers_equivalent, extract_answer, extract_answer_lenient

PROGRESS_MIN = 200
"""Show a progress bar from this many responses on."""


def grade(data_rows: list[dict], responses: list[dict], lenient: bool = True) -> tuple[list[dict], dict]:
    """Grade ``responses`` against ``data_rows``.

    Returns the graded rows ``{"id", "response", "extracted", "correct"}`` (in response order) and
    the results of :func:`~r1kit.eval.metrics.summarize` over the problems that have responses,
    plus ``lenient``, ``n_data_rows`` and ``verify_failures`` (equivalence checks that timed out
    or failed). An id that is not in the data raises :class:`DataError`.
    """
    if any(row.get("task") == "countdown" for row in data_rows):
        raise DataError("r1kit grade compares answers by mathematical equivalence, and a Countdown answer worth "
                        "the target may use other numbers: Countdown problems (task: countdown) are graded by "
                        "their rule in r1kit eval (data=countdown)")
    references = {str(row["id"]): str(row["answer"]) for row in data_rows}
    unknown = sorted({str(r["id"]) for r in responses} - references.keys())
    if unknown:
        shown = ", ".join(repr(i) for i in unknown[:5])
        if len(unknown) > 5:
            shown += f" and {len(unknown) - 5} more"
        raise DataError(f"{len(unknown)} response id(s) not in the data: {shown}")
    extract = extract_answer_lenient if lenient else extract_answer
    failures_before = sum(VERIFY_FAILURES.values())
    graded = []
    for row in tqdm(responses, desc="grading", unit="resp", disable=len(responses) < PROGRESS_MIN):
        pid, response = str(row["id"]), str(row["response"])
        extracted = extract(response)
        correct = extracted is not None and answers_equivalent(extracted, references[pid])
        graded.append({"id": row["id"], "response": response, "extracted": extracted, "correct": correct})

    by_id: dict[str, list[dict]] = {}
    for g in graded:
        by_id.setdefault(str(g["id"]), []).append(g)
    order = [pid for pid in references if pid in by_id]
    if not order:
        raise DataError("no responses to grade")
    results = summarize(
        [[g["correct"] for g in by_id[pid]] for pid in order],
        [[g["extracted"] for g in by_id[pid]] for pid in order],
        [references[pid] for pid in order],
    )
    results.update(lenient=lenient, n_data_rows=len(data_rows),
                   verify_failures=sum(VERIFY_FAILURES.values()) - failures_before)
    return graded, results


def run_grade(data_path: str | Path, responses_path: str | Path, out_dir: str | Path,
              data_dir: str | Path | None = None) -> dict:
    """Grade a responses file against a problem set and write ``out_dir/results.json`` and
    ``out_dir/graded.jsonl``. ``data_path`` is a benchmark name or a file (see
    :func:`r1kit.data.benchmarks.load_problems`). Returns the results."""
    problems = load_problems(str(data_path), data_dir=data_dir)
    responses = read_rows(responses_path)
    require_fields(responses, ("id", "response"), responses_path)
    graded, results = grade(problems, responses)
    results = {"data": str(data_path), "responses": str(responses_path), **results}
    out_dir = Path(out_dir)
    write_jsonl(out_dir / "graded.jsonl", graded)
    write_json_atomic(out_dir / "results.json", results)  # last: results.json marks a finished grading
    return results
