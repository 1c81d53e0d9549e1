"""The few figures that say how a run went, in words: what every command prints when it ends and
what the report shows at its top (before/after of the held-out evaluation)."""
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


def before_after(first: dict, last: dict) -> list[tuple[str, str, str, str]]:
    """Rows ``(figure, before, after, change)`` from the first and last evaluation of a run."""
    k = first.get("k") or 1
    rows = []
    for key, name in (("pass@1", "pass@1"), (f"cons@{k}", f"cons@{k}"), ("mean_length", "mean length (tokens)"),
                      ("format_rate", "format"), ("reflection_rate", "reflection rate"),
                      ("language_consistency", "language consistency")):
        a, b = first.get(key), last.get(key)
        if a is None or b is None or (key == f"cons@{k}" and k == 1):
            continue
        if key == "mean_length":
            rows.append((name, f"{a:.1f}", f"{b:.1f}", f"{b / a:.2f}x" if a else ""))
        else:
            rows.append((name, pct(a), pct(b), f"{100 * (b - a):+.1f}"))
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
