"""The report's static HTML page.

The page is self-contained: styles and the one small script are inline,
and the figures are referenced by relative paths to PNGs in the same
folder. Every piece of run-supplied text is HTML-escaped.
"""

from __future__ import annotations

import html
import json
import math
from typing import Any

from .data import RunData
from r1kit.report.figures import before_after

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto;
       max-width: 1100px; padding: 1.5rem; color: #1d1d1f; background: #fafafa; }
h1 { margin-bottom: 0.2rem; }
.path { color: #666; font-family: monospace; margin-top: 0; }
section { margin-top: 2rem; }
.notes { background: #fff6e0; border: 1px solid #e6c46c; border-radius: 6px; padding: 0.6rem 1rem; }
.tables { display: flex; flex-wrap: wrap; gap: 1.5rem; align-items: flex-start; }
table { border-collapse: collapse; background: #fff; font-size: 0.92rem; }
caption { text-align: left; font-weight: 600; padding-bottom: 0.3rem; white-space: nowrap; }
th, td { border: 1px solid #ddd; padding: 0.25rem 0.7rem; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1rem 0 1.8rem; background: #fff; border: 1px solid #ddd; border-radius: 6px;
         padding: 0.6rem; }
figure img { max-width: 100%; height: auto; display: block; margin: 0 auto; }
figcaption { color: #555; font-size: 0.9rem; margin-top: 0.4rem; }
pre { background: #f0f0f3; border: 1px solid #ddd; border-radius: 6px; padding: 0.8rem;
      overflow-x: auto; font-size: 0.85rem; }
footer { margin-top: 2rem; color: #888; font-size: 0.8rem; }
"""

# Counts the images that decoded (naturalWidth > 0) once the page has
# loaded, and writes the count into #img-status so that a headless browser
# (or a person) can check the page is complete.
_SCRIPT = """
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (im) { return im.complete && im.naturalWidth > 0; }).length;
  var el = document.getElementById("img-status");
  el.setAttribute("data-loaded", String(ok));
  el.setAttribute("data-total", String(imgs.length));
  el.textContent = ok + " of " + imgs.length + " images loaded";
});
"""


def format_value(value: Any) -> str:
    """A short human-readable rendering of one figure (not yet escaped)."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value == 0:
            return "0"
        if abs(value) >= 1000:
            return f"{value:,.1f}"
        if abs(value) >= 1e-3:
            return f"{value:.4g}"
        return f"{value:.3e}"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _table(caption: str, row: dict) -> str:
    """An HTML table of key/value pairs."""
    body = []
    for key, value in row.items():
        cls = ' class="num"' if isinstance(value, (int, float)) and not isinstance(value, bool) else ""
        body.append(f"<tr><th>{html.escape(str(key))}</th>"
                    f"<td{cls}>{html.escape(format_value(value))}</td></tr>")
    return (f"<table><caption>{html.escape(caption)}</caption>\n"
            + "\n".join(body) + "\n</table>")


def first_last_table(run: RunData) -> str:
    """The run at a glance: every ``FIRST_LAST`` figure at the first and last held-out evaluation
    (or training step, without evaluations), with the change."""
    rows, source = (run.evals, "eval") if run.evals else (run.metrics, "metrics")
    if not rows:
        return ""
    first, last = rows[0], rows[-1]
    body = "\n".join(f"<tr><th>{html.escape(name)}</th>"
                     + "".join(f'<td class="num">{html.escape(v)}</td>' for v in values) + "</tr>"
                     for name, *values in before_after(first, last, source))
    if not body:
        return ""
    what = "held-out evaluation" if source == "eval" else "training batch"
    head = (f"<tr><th>{what}</th><th>step {html.escape(format_value(first.get('step', '?')))}</th>"
            f"<th>step {html.escape(format_value(last.get('step', '?')))}</th><th>change</th></tr>")
    return (f'<section id="phenomena"><h2>First vs last</h2><table id="before-after">'
            f"<caption>{what}, first vs last</caption>\n{head}\n{body}\n</table></section>")


def final_figures(run: RunData) -> str:
    """The final-figures tables: the last eval and metrics rows (with the summary's reward
    failures, when any)."""
    tables = []
    if run.evals:
        tables.append(_table(f"last evaluation (step {format_value(run.evals[-1].get('step', '?'))})",
                             run.evals[-1]))
    if run.metrics:
        tables.append(_table(f"last training step (step {format_value(run.metrics[-1].get('step', '?'))})",
                             run.metrics[-1]))
    if run.summary is not None:
        failures = (run.summary.get("reward_failures") or {}).get("failures") if isinstance(run.summary, dict) else None
        shown = {k: v for k, v in run.summary.items() if k not in ("final_eval", "reward_failures")}
        if failures:
            shown.update({f"reward failure: {k}": v for k, v in failures.items()})
        tables.append(_table("summary.json", shown))
    if not tables:
        return "<p>No figures to show.</p>"
    return "\n".join(tables)


def render(run: RunData, figures: list[tuple[str, str]], notes: list[str]) -> str:
    """The full page.

    ``figures`` lists ``(filename, caption)`` of the PNGs drawn, ``notes``
    the remarks on what is missing.
    """
    title = f"r1kit report: {run.run_dir.resolve().name}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title>",
        f"<style>{_CSS}</style>",
        f"<script>{_SCRIPT}</script>",
        "</head>",
        "<body>",
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="path">{html.escape(str(run.run_dir.resolve()))}</p>',
    ]
    if notes:
        items = "\n".join(f"<li>{html.escape(n)}</li>" for n in notes)
        parts.append(f'<section class="notes"><strong>Missing data</strong><ul>\n{items}\n</ul></section>')
    parts.append(first_last_table(run))
    parts.append('<section><h2>Final figures</h2><details><summary>every logged figure of the last '
                 'evaluation and step, and summary.json</summary><div class="tables">')
    parts.append(final_figures(run))
    parts.append("</div></details></section>")
    parts.append("<section><h2>Plots</h2>")
    if not figures:
        parts.append("<p>No plots could be drawn from this run.</p>")
    for filename, caption in figures:
        src = html.escape(filename, quote=True)
        parts.append(f'<figure><img src="{src}" alt="{html.escape(caption, quote=True)}">'
                     f"<figcaption>{html.escape(caption)}</figcaption></figure>")
    parts.append("</section>")
    parts.append("<section><h2>Config</h2>")
    if run.config is None:
        parts.append("<p>No config.json.</p>")
    else:
        text = json.dumps(run.config, indent=2, ensure_ascii=False)
        parts.append(f'<pre id="config">{html.escape(text, quote=False)}</pre>')
    parts.append("</section>")
    # (hidden: for a headless browser's check that every image decoded)
    parts.append('<footer><div id="img-status" data-loaded="" data-total="" hidden>images not checked</div>'
                 "</footer>")
    parts += ["</body>", "</html>", ""]
    return "\n".join(parts)
