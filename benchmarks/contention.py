"""Seconds per GRPO step when the CPU is shared: the default R1-Zero run quiet vs beside one
competing CPU-bound process.

Runs ``r1kit zero --config recipes/zero_tiny.yaml`` (the arithmetic run on the embedded tiny
model, the default until 2026-12-05) for ``--steps`` steps, quiet,
then with one busy-looping Python process started beside it (it takes one core: on 2 cores a
fair share is a ratio of 2.0). Both with r1kit's thread policy (``r1kit.threads``: as many
threads as the other processes leave CPUs free, one inter-op thread) and, with ``--compare``, with
it turned off (``R1KIT_THREAD_POLICY=0``: torch's fixed count of spinning workers). Seconds per step are the medians of the
metrics' ``step_seconds``, the first step (warm-up) left out; the seeded runs produce the same
steps whatever the load, so quiet and loaded do the same work.

    python benchmarks/contention.py                 # 8 steps per run, policy on
    python benchmarks/contention.py --compare       # also with the policy off
    python benchmarks/contention.py --command eval --compare     # r1kit eval (50 problems x 4)
    python benchmarks/contention.py --command sample --compare   # r1kit sample (25 prompts x 4)

``--command eval`` / ``sample`` time the whole command (wall seconds, start-up included, the same
in both runs) instead of steps: they sample with the same engine and the same thread governor.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BUSY = "while True:\n    pass\n"


from r1kit.runs import is_timing_key  # noqa: E402  (wall-clock, memory, thread-count fields)


def run_steps(steps: int, policy: bool, loaded: bool, overrides: list[str]) -> tuple[list[float], list[dict]]:
    """Per-step seconds of one ``r1kit zero`` run (its first step left out) and its metrics
    without the timings (identical runs for one seed, whatever the load)."""
    with tempfile.TemporaryDirectory() as out:
        r1kit(["zero", "--config", str(ROOT / "recipes" / "zero_tiny.yaml"), "--out", out, "--no-report", f"steps={steps}", "eval.every=0", "checkpoint_every=0",
               "log_tensorboard=false", *overrides], policy, loaded)
        rows = [json.loads(line) for line in Path(out, "metrics.jsonl").read_text().splitlines() if line.strip()]
    threads = sorted({row.get("threads") for row in rows[1:]})
    return [row["step_seconds"] for row in rows][1:], [{k: v for k, v in row.items() if not is_timing_key(k)} for row in rows], threads


# the other governed commands: a few hundred samples of the tiny model each
COMMANDS = {"eval": ["eval", "--model", "tiny", "--data", "synthetic", "--k", "4", "--limit", "50"],
            "sample": ["sample", "--model", "tiny", "--data", "synthetic", "--k", "4", "--limit", "25"]}


def run_command(command: str, policy: bool, loaded: bool) -> float:
    """Wall seconds of one ``r1kit eval`` or ``r1kit sample`` run (``COMMANDS``)."""
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        r1kit([*COMMANDS[command], "--out", out + "/run"], policy, loaded)
        return time.perf_counter() - t0


def r1kit(argv: list[str], policy: bool, loaded: bool) -> None:
    """Run ``r1kit ARGV`` with the thread policy on or off, beside one busy process if ``loaded``."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "KMP_BLOCKTIME")}
    env["R1KIT_THREAD_POLICY"] = "1" if policy else "0"
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    busy = subprocess.Popen([sys.executable, "-c", BUSY]) if loaded else None
    try:
        proc = subprocess.run([sys.executable, "-m", "r1kit.cli", *argv], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    finally:
        if busy is not None:
            busy.kill()
            busy.wait()
    if proc.returncode:
        raise SystemExit(f"r1kit {argv[0]} failed:\n{proc.stderr[-3000:]}")


def compare_command(command: str, compare: bool) -> None:
    """Quiet vs loaded wall seconds of ``command``, policy on (and off with ``compare``)."""
    for policy in ([False, True] if compare else [True]):
        quiet, loaded = (run_command(command, policy, load) for load in (False, True))
        print(f"r1kit {command}, policy {'on ' if policy else 'off'}: quiet {quiet:.1f} s, loaded {loaded:.1f} s, "
              f"loaded/quiet {loaded / quiet:.2f}", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=8, help="steps per run (the first is not counted)")
    ap.add_argument("--compare", action="store_true", help="also run with the thread policy off")
    ap.add_argument("--command", choices=["zero", *COMMANDS], default="zero", help="the command to time")
    ap.add_argument("overrides", nargs="*", help="r1kit zero overrides, key=value")
    args = ap.parse_args()
    if args.command != "zero":
        compare_command(args.command, args.compare)
        return 0
    print(f"{os.cpu_count()} cores; r1kit zero defaults, {args.steps} steps per run", flush=True)
    ratios = {}
    for policy in ([False, True] if args.compare else [True]):
        label = "policy on " if policy else "policy off"
        med, results = {}, {}
        for loaded in (False, True):
            t0 = time.perf_counter()
            times, results[loaded], counts = run_steps(args.steps, policy, loaded, args.overrides)
            med[loaded] = statistics.median(times)
            print(f"{label} {'loaded' if loaded else 'quiet ':6s}: median {med[loaded]:.3f} s/step "
                  f"(min {min(times):.3f}, max {max(times):.3f}; threads {counts}; run {time.perf_counter() - t0:.0f} s)", flush=True)
        ratios[policy] = med[True] / med[False]
        same = "identical" if results[True] == results[False] else "DIFFERENT"
        print(f"{label}: loaded/quiet {ratios[policy]:.2f}; metrics (rewards, loss, grad norm, ...) of the two "
              f"runs {same}", flush=True)
    if False in ratios:
        print(f"ratio loaded/quiet seconds-per-step, policy off: {ratios[False]:.2f}")
    print(f"ratio loaded/quiet seconds-per-step: {ratios[True]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
