"""``r1kit report RUN_DIR``: a static HTML report of a GRPO run.

:func:`write_report` reads ``metrics.jsonl``, ``eval.jsonl``,
``config.json`` and (if present) ``summary.json`` from a run directory and
writes ``RUN_DIR/report/`` with:

* ``accuracy.png``   pass@1 and cons@K vs step (R1 paper, Figure 2),
* ``length.png``     average response length vs step (R1 paper, Figure 3), all / correct / incorrect,
* ``reflection.png`` reflection rate and real fixes vs step,
* ``reflection_accuracy.png`` accuracy with vs without reflection vs step,
* ``language.png``   language consistency and mixing rate of the chains of thought vs step,
* ``rewards.png``    mean reward overall and per reward function,
* ``training.png``   KL, entropy, clip fraction, grad norm, throughput,
* ``index.html``     a self-contained page opening with the phenomena table
  (first vs last evaluation), then the final figures, the plots above and
  the run's config.

Plots whose data is absent are left out and the page says so.
"""

from __future__ import annotations

from pathlib import Path

from .data import ReportWarning, RunData
from .page import render
from .plots import PLOTS

__all__ = ["write_report", "ReportWarning", "RunData"]

REPORT_DIR = "report"


def write_report(run_dir: str | Path) -> Path:
    """Write the report of the run in ``run_dir`` and return the path of its ``index.html``.

    Raises :class:`FileNotFoundError` when ``run_dir`` does not exist or
    holds neither ``metrics.jsonl`` nor ``eval.jsonl``. Unparsable lines
    in those files are skipped with a :class:`ReportWarning`.
    """
    run = RunData.load(run_dir)
    out = run.run_dir / REPORT_DIR
    out.mkdir(parents=True, exist_ok=True)

    figures: list[tuple[str, str]] = []
    notes = list(run.notes)
    for plot in PLOTS:
        path = out / plot.filename
        path.unlink(missing_ok=True)  # never show a stale figure from an earlier report
        reason = plot.draw(run, path)
        if reason is None:
            figures.append((plot.filename, plot.caption))
        else:
            notes.append(f"{plot.filename} not drawn: {reason}.")

    index = out / "index.html"
    index.write_text(render(run, figures, notes), encoding="utf-8")
    return index
