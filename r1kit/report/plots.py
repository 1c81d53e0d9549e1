"""The report's figures, drawn with matplotlib's Agg renderer.

Figures are built with :class:`matplotlib.figure.Figure` directly rather
than through ``pyplot``, so no GUI backend is touched and no global figure
state is left behind. Each ``plot_*`` function takes the loaded run and an
output path, and returns ``None`` when it drew the figure or a sentence
saying why it could not (the data it needs is absent).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, NamedTuple

from matplotlib.figure import Figure

from .data import RunData, cons_keys, has_series, reward_component_keys, series

DPI = 110
FIGSIZE = (7.5, 4.3)
# Panels of training.png, in order, with their axis labels.
TRAINING_PANELS = [
    ("kl", "KL to reference"),
    ("entropy", "entropy (nats/token)"),
    ("clip_frac", "clipped fraction"),
    ("grad_norm", "gradient norm"),
    ("tokens_per_s", "tokens / s"),
]


def _style(ax, title: str, ylabel: str, xlabel: str = "training step") -> None:
    """Give an axes a title, axis labels and a light grid."""
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.35)


def _save(fig: Figure, path: Path) -> None:
    """Write a figure as PNG."""
    fig.savefig(path, dpi=DPI, format="png")


def plot_accuracy(run: RunData, path: Path) -> str | None:
    """pass@1 and cons@K vs step (the R1 paper's Figure 2), plus the faint training-batch accuracy."""
    lines = [(key, key) for key in ["pass@1", *cons_keys(run.evals)] if has_series(run.evals, key)]
    train = has_series(run.metrics, "accuracy")
    if not lines and not train:
        return "no pass@1 / cons@K in eval.jsonl and no accuracy in metrics.jsonl"
    fig = Figure(figsize=FIGSIZE, layout="constrained")
    ax = fig.add_subplot()
    if train:
        ax.plot(*series(run.metrics, "accuracy"), color="tab:gray", alpha=0.35, lw=1,
                label="training-batch accuracy")
    colours = ["tab:blue", "tab:red", "tab:green", "tab:purple"]
    for i, (key, label) in enumerate(lines):
        ax.plot(*series(run.evals, key), marker="o", ms=4, lw=2,
                color=colours[i % len(colours)], label=label)
    ax.set_ylim(bottom=0)
    _style(ax, "Accuracy during training", "accuracy")
    ax.legend(loc="best")
    _save(fig, path)
    return None


class Line(NamedTuple):
    """One quantity of a figure: its training (metrics.jsonl) and evaluation (eval.jsonl) keys."""

    train_key: str | None
    eval_key: str | None
    colour: str
    label: str


def moving_average(values: list[float], window: int) -> list[float]:
    """Each value replaced by the mean of the ``window`` values ending at it (fewer at the start):
    per-step training figures are noisy, and several of them share a plot."""
    out, total = [], 0.0
    for i, value in enumerate(values):
        total += value - (values[i - window] if i >= window else 0.0)
        out.append(total / min(i + 1, window))
    return out


def _lines_plot(run: RunData, path: Path, lines: list[Line], title: str, ylabel: str) -> str | None:
    """Quantities vs step: training batches as lines, evaluations as points of the same colour."""
    drawn = [(ln, ln.train_key and has_series(run.metrics, ln.train_key),
              ln.eval_key and has_series(run.evals, ln.eval_key)) for ln in lines]
    if not any(train or evals for _, train, evals in drawn):
        return "none of " + ", ".join(k for ln in lines for k in (ln.train_key, ln.eval_key) if k) + " logged"
    fig = Figure(figsize=FIGSIZE, layout="constrained")
    ax = fig.add_subplot()
    for ln, train, evals in drawn:
        if train:
            steps, values = series(run.metrics, ln.train_key)
            window = max(1, len(values) // 25)
            ax.plot(steps, moving_average(values, window), color=ln.colour, lw=1.3, alpha=0.8,
                    label=f"{ln.label} (training" + (f", mean of {window} steps)" if window > 1 else ")"))
        if evals:
            ax.plot(*series(run.evals, ln.eval_key), "o--", color=ln.colour, ms=6, lw=1,
                    markeredgecolor="black", label=f"{ln.label} (evaluation)")
    ax.set_ylim(bottom=0)
    _style(ax, title, ylabel)
    ax.legend(loc="best", fontsize="small")
    _save(fig, path)
    return None


def plot_length(run: RunData, path: Path) -> str | None:
    """Mean response length vs step (the R1 paper's Figure 3), and that of right and wrong responses."""
    return _lines_plot(run, path, [Line("response_length/mean", "mean_length", "tab:blue", "all"),
                                   Line("length_correct", "length_correct", "tab:green", "correct"),
                                   Line("length_incorrect", "length_incorrect", "tab:red", "incorrect")],
                       "Average length per response", "length (tokens)")


def plot_reflection(run: RunData, path: Path) -> str | None:
    """Share of responses with reflection words ("wait", "re-check", ...) and of real fixes vs step."""
    return _lines_plot(run, path, [Line("reflection_rate", "reflection_rate", "tab:purple", "reflection rate"),
                                   Line("reflection_fixes", "reflection_fixes", "tab:olive",
                                        "fixes (share of reflective)")],
                       "Reflection rate", "fraction of responses")


def plot_reflection_accuracy(run: RunData, path: Path) -> str | None:
    """Accuracy of responses with and without a reflection phrase vs step."""
    return _lines_plot(run, path, [Line("accuracy_reflective", "accuracy_reflective", "tab:purple", "with reflection"),
                                   Line("accuracy_non_reflective", "accuracy_non_reflective", "tab:gray",
                                        "without reflection")],
                       "Accuracy with vs without reflection", "accuracy")


def _searched(run: RunData) -> bool:
    """Whether any response of the run checked a candidate against a target (a search task)."""
    return any(v > 0 for rows in (run.metrics, run.evals) for v in series(rows, "attempts_mean")[1])


def plot_attempts(run: RunData, path: Path) -> str | None:
    """Candidates checked against the target per response (r1kit.eval.probes.attempts) vs step."""
    if not _searched(run):
        return "no response checked a candidate (not a search task)"
    return _lines_plot(run, path, [Line("attempts_mean", "attempts_mean", "tab:brown", "attempts per response")],
                       "Search: attempts per response", "candidates checked")


def plot_attempts_accuracy(run: RunData, path: Path) -> str | None:
    """Accuracy of the responses by number of candidates checked (0, 1, 2, 3 or more) vs step."""
    if not _searched(run):
        return "no response checked a candidate (not a search task)"
    colours = ("tab:gray", "tab:blue", "tab:orange", "tab:green")
    return _lines_plot(run, path, [Line(f"accuracy_attempts_{b}", f"accuracy_attempts_{b}", c,
                                        f"{b.replace('plus', '+')} attempts")
                                   for b, c in zip(("0", "1", "2", "3plus"), colours)],
                       "Accuracy by number of attempts", "accuracy")


def _tooled(run: RunData) -> bool:
    """Whether the run's episodes had an environment (its rows carry the tool probes)."""
    return has_series(run.metrics, "tool_call_rate") or has_series(run.evals, "tool_call_rate")


def plot_tools(run: RunData, path: Path) -> str | None:
    """Tool use vs step (r1kit.eval.probes.tool_probes): share of responses with a call, calls and
    turns per response, share of failed calls."""
    if not _tooled(run):
        return "no environment (single-turn episodes)"
    return _lines_plot(run, path, [Line("tool_call_rate", "tool_call_rate", "tab:blue", "responses with a call"),
                                   Line("tool_calls_mean", "tool_calls_mean", "tab:orange", "calls per response"),
                                   Line("turns_mean", "turns_mean", "tab:green", "turns per response"),
                                   Line("tool_error_rate", "tool_error_rate", "tab:red", "failed calls")],
                       "Tool use", "rate / count")


def plot_tools_accuracy(run: RunData, path: Path) -> str | None:
    """Accuracy of responses with and without a tool call vs step."""
    if not _tooled(run):
        return "no environment (single-turn episodes)"
    return _lines_plot(run, path, [Line("accuracy_with_tool", "accuracy_with_tool", "tab:blue", "with a tool call"),
                                   Line("accuracy_without_tool", "accuracy_without_tool", "tab:gray",
                                        "without a tool call")],
                       "Accuracy with vs without a tool call", "accuracy")


def plot_language(run: RunData, path: Path) -> str | None:
    """Language consistency of the chains of thought and the share that mix languages vs step."""
    return _lines_plot(run, path, [Line("language_consistency", "language_consistency", "tab:blue", "consistency"),
                                   Line("language_mixing_rate", "language_mixing_rate", "tab:red", "mixing rate")],
                       "Language of the chains of thought", "fraction")


def plot_rewards(run: RunData, path: Path) -> str | None:
    """Mean total reward (with a +/- std band when logged) and each reward function's mean."""
    components = reward_component_keys(run.metrics)
    total = has_series(run.metrics, "reward/mean")
    if not total and not components:
        return "no reward/mean or reward/<name>/mean in metrics.jsonl"
    fig = Figure(figsize=FIGSIZE, layout="constrained")
    ax = fig.add_subplot()
    if total:
        steps, means = series(run.metrics, "reward/mean")
        ax.plot(steps, means, color="black", lw=2, label="reward (total)")
        std = dict(zip(*series(run.metrics, "reward/std")))
        band = [(s, m, std[s]) for s, m in zip(steps, means) if s in std and math.isfinite(std[s])]
        if band:
            xs = [b[0] for b in band]
            ax.fill_between(xs, [m - d for _, m, d in band], [m + d for _, m, d in band],
                            color="black", alpha=0.1, lw=0, label="total ± std")
    for key in components:
        ax.plot(*series(run.metrics, key), lw=1.3, label=key[len("reward/"):-len("/mean")])
    _style(ax, "Rewards", "mean reward")
    ax.legend(loc="best", fontsize="small")
    _save(fig, path)
    return None


def plot_training(run: RunData, path: Path) -> str | None:
    """A grid of optimisation health metrics: KL, entropy, clip fraction, grad norm, throughput."""
    panels = [(k, label) for k, label in TRAINING_PANELS
              if has_series(run.metrics, k) and len(set(series(run.metrics, k)[1])) > 1]  # constant: left out
    if not panels:
        return "none of " + ", ".join(k for k, _ in TRAINING_PANELS) + " in metrics.jsonl"
    ncols = min(3, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig = Figure(figsize=(3.6 * ncols, 2.9 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, (key, label) in zip(axes, panels):
        ax.plot(*series(run.metrics, key), color="tab:blue", lw=1.2)
        _style(ax, key, label)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    fig.suptitle("Training dynamics")
    _save(fig, path)
    return None


class Plot(NamedTuple):
    """One figure of the report: its file name, caption and drawing function."""

    filename: str
    caption: str
    draw: Callable[[RunData, Path], str | None]


PLOTS = [
    Plot("accuracy.png", "Evaluation pass@1 and cons@K (majority vote) over training; "
         "the faint line is the training-batch accuracy.", plot_accuracy),
    Plot("length.png", "Average length per response during training (lines) and at evaluations (points): "
         "all, correct and incorrect responses.",
         plot_length),
    Plot("reflection.png", "Fraction of responses containing reflection (e.g. \u201cwait\u201d, "
         "\u201clet me re-check\u201d), and the share of reflective responses that changed a value "
         "and ended right (real fixes).", plot_reflection),
    Plot("reflection_accuracy.png", "Accuracy of responses with and without a reflection phrase.",
         plot_reflection_accuracy),
    Plot("attempts.png", "Search: candidates checked against the target per response (0 for a direct "
         "answer).", plot_attempts),
    Plot("attempts_accuracy.png", "Accuracy of the responses by number of candidates checked.",
         plot_attempts_accuracy),
    Plot("language.png", "Language consistency of the chains of thought and the share below 0.9 "
         "(mixing languages).", plot_language),
    Plot("tools.png", "Tool use (runs with an environment): share of responses with a tool call, calls and "
         "turns per response, share of calls that failed.", plot_tools),
    Plot("tools_accuracy.png", "Accuracy of the responses with and without a tool call.", plot_tools_accuracy),
    Plot("rewards.png", "Mean reward overall and per reward function.", plot_rewards),
    Plot("training.png", "Optimisation health: KL to the reference (runs with beta > 0), entropy, clipped "
         "fraction, gradient norm, throughput; a figure constant over the run is left out.",
         plot_training),
]
