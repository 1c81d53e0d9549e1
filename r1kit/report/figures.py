"""The few figures that say how a run went, in words: what every command prints when it ends and
what the report shows at its top (first vs last evaluation: ``FIRST_LAST``)."""
from __future__ import annotations

from pathlib import Path


def duration(seconds: float) -> str:
    """``213.4`` -> ``"3 min 33 s"``; ``42.0`` -> ``"42 s"``; hours when it takes hours."""
    s = int(round(seconds))
    h, m, s = s // 3600, s // 60 % 60, s % 60
    return f"{h} h {m} min" if h else f"{m} min {s} s" if m else f"{s} s"


def pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def eval_figures(row: dict) -> dict[str, str]:
    """An evaluation's headline figures, formatted: pass@1, cons@k, pass@k, mean length, format."""
    k = row.get("k") or row.get("samples_per_problem") or 1
    out = {"pass@1": pct(row.get("pass@1"))}
    if k > 1:
        out[f"cons@{k}"] = pct(row.get(f"cons@{k}"))
        out[f"pass@{k}"] = pct(row.get(f"pass@{k}"))
    if row.get("mean_length") is not None:
        out["mean length"] = f"{row['mean_length']:.1f} tokens"
    if row.get("format_rate") is not None:
        out["format"] = pct(row["format_rate"])
    return out


FIRST_LAST = [
    ("pass@1", "pass@1", "accuracy", "rate"),
    ("cons@{k}", "cons@{k}", None, "rate"),
    ("mean length (tokens)", "mean_length", "response_length/mean", "length"),
    ("length of correct responses", "length_correct", "length_correct", "length"),
    ("length of incorrect responses", "length_incorrect", "length_incorrect", "length"),
    ("format", "format_rate", "format_rate", "rate"),
    ("reflection rate", "reflection_rate", "reflection_rate", "rate"),
    ("accuracy with reflection", "accuracy_reflective", "accuracy_reflective", "rate"),
    ("accuracy without reflection", "accuracy_non_reflective", "accuracy_non_reflective", "rate"),
    ("reflection fixes (share of reflective)", "reflection_fixes", "reflection_fixes", "rate"),
    ("language consistency", "language_consistency", "language_consistency", "rate"),
    ("language mixing rate", "language_mixing_rate", "language_mixing_rate", "rate"),
    ("tool call rate", "tool_call_rate", "tool_call_rate", "rate"),
    ("accuracy with a tool call", "accuracy_with_tool", "accuracy_with_tool", "rate"),
    ("accuracy without a tool call", "accuracy_without_tool", "accuracy_without_tool", "rate"),
]
"""The first-vs-last figures: label, eval.jsonl key, metrics.jsonl key (None: not logged per step),
and whether the value is a rate (shown in %, change in points) or a length (change as a ratio)."""


def before_after(first: dict, last: dict, source: str = "eval") -> list[tuple[str, str, str, str]]:
    """Rows ``(figure, first, last, change)`` of ``FIRST_LAST`` from two evaluation rows
    (``source="eval"``) or two training-step rows (``"metrics"``); a figure absent from both is
    left out, one absent from either reads ``n/a``."""
    k = first.get("k") or 1
    rows = []
    for label, eval_key, metrics_key, kind in FIRST_LAST:
        key = eval_key if source == "eval" else metrics_key
        if key is None or ("{k}" in key and k == 1):
            continue
        key, label = key.format(k=k), label.format(k=k)
        a, b = first.get(key), last.get(key)
        if a is None and b is None:
            continue
        if kind == "length":
            show = [("n/a" if v is None else f"{v:.1f}") for v in (a, b)]
            change = f"{b / a:.2f}x" if a and b is not None else ""
        else:
            show = [pct(a), pct(b)]
            change = f"{100 * (b - a):+.1f}" if a is not None and b is not None else ""
        rows.append((label, *show, change))
    return rows


def zero_ending(out: str | Path, evals: list[dict], summary: dict, report: str | None) -> str:
    """What ``r1kit zero`` prints when it ends."""
    out = Path(out)
    lines = [f"R1-Zero finished: {summary['steps']} steps, {duration(summary.get('seconds_this_session', 0))} "
             f"this session. Run directory: {out}"]
    if len(evals) >= 2:
        first, last = evals[0], evals[-1]
        rows = {name: (a, b, d) for name, a, b, d in before_after(first, last)}
        parts = [f"pass@1 {rows['pass@1'][0]} -> {rows['pass@1'][1]} ({rows['pass@1'][2]} points)"]
        parts += [f"{name} {a} -> {b}" for name, (a, b, _) in rows.items() if name.startswith("cons@")]
        if "mean length (tokens)" in rows:
            a, b, _ = rows["mean length (tokens)"]
            parts.append(f"length {a} -> {b} tokens")
        lines.append(f"  held-out (step {first['step']} -> {last['step']}): " + ", ".join(parts))
    elif evals:
        lines.append(f"  held-out at step {evals[-1]['step']}: "
                     + ", ".join(f"{k} {v}" for k, v in eval_figures(evals[-1]).items()))
    failures = sum((summary.get("reward_failures") or {}).get("failures", {}).values())
    if failures:
        lines.append(f"  reward failures: {failures} (counted by reason in summary.json)")
    last = out / f"checkpoint-{summary['steps']}"
    what = ("LoRA adapters; r1kit merge-lora writes the merged model" if (last / "adapter_config.json").exists()
            else "an HF model folder")
    lines.append(f"  outputs: {out / 'metrics.jsonl'} (every step), {out / 'eval.jsonl'}, {last}/ ({what})")
    if report:
        lines.append(f"  report: {report}")
    return "\n".join(lines)
