#!/usr/bin/env bash
# DeepSeek-R1 §4.1 in miniature: is distilling a smaller student from an RL-trained teacher better
# than running RL on the student itself with the same wall-clock budget? (docs/distill.md: "Distillation vs
# RL on a smaller student".)
#
#   bash scripts/distill_vs_rl.sh [RUNS_DIR]        (default runs/distill_vs_rl)
#
# Stages whose output already exists are reused, so an interrupted run can simply be started again.
# Environment: K (samples per held-out problem, default 8), B_STEPS (steps of the student's RL run,
# default 1000), EXTRA (key=value overrides for the distill command).
#   teacher  r1kit zero --config recipes/zero_tiny.yaml (the arithmetic run) on the tiny base: checkpoint-200
#   (a)      the student base, tiny-small (3 layers of width 96: 0.40M parameters; the teacher 0.90M)
#   (c)      r1kit distill: teacher samples the training problems, the student is SFT'd on the kept traces
#   (b)      r1kit zero on the student (the teacher's recipe), evaluated at the last checkpoint whose
#            summed GRPO step time fits in (c)'s sampling + SFT time, and at the end of the run
# All evaluations: the 200 held-out synthetic problems, pass@1 over K samples at T 0.6 / top-p 0.95.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-runs/distill_vs_rl}
K=${K:-8}
B_STEPS=${B_STEPS:-1000}
EXTRA=${EXTRA:-}
mkdir -p "$RUNS"
r1kit() { python -m r1kit.cli "$@"; }
evaluate() {  # evaluate MODEL OUT
  [ -f "$2/results.json" ] || r1kit eval --model "$1" --data synthetic --k "$K" --max-new-tokens 128 --out "$2" >/dev/null
}
clock() {  # clock NAME COMMAND...: run COMMAND, record its wall time in RUNS/NAME.seconds
  local start=$(date +%s.%N)
  "${@:2}"
  python -c "import sys; print(round($(date +%s.%N) - $start, 1))" > "$RUNS/$1.seconds"
}

[ -f "$RUNS/teacher/summary.json" ] || clock teacher r1kit zero --config recipes/zero_tiny.yaml --out "$RUNS/teacher" --no-report
evaluate "$RUNS/teacher/checkpoint-200" "$RUNS/teacher_eval"
evaluate tiny-small "$RUNS/a_base"
[ -f "$RUNS/c_distill/summary.json" ] || clock c_distill r1kit distill --teacher "$RUNS/teacher/checkpoint-200" \
  --student tiny-small --out "$RUNS/c_distill" --config recipes/distill_tiny.yaml eval.k="$K" $EXTRA
[ -f "$RUNS/b_rl/summary.json" ] || clock b_rl r1kit zero --config recipes/zero_tiny.yaml --out "$RUNS/b_rl" --no-report model=tiny-small \
  steps="$B_STEPS" eval.every=0 checkpoint_every=5 keep_checkpoints=1000

# the last checkpoint of (b) whose summed GRPO step time fits in (c)'s sampling + SFT time, and the last one
read -r S1 SEND < <(python - "$RUNS" <<'EOF'
import json, sys
runs = sys.argv[1]
budget = json.load(open(f"{runs}/c_distill/summary.json"))["seconds"]["distill"]
steps, t, at = [], 0.0, {}
for line in open(f"{runs}/b_rl/metrics.jsonl"):
    m = json.loads(line)
    t += m["step_seconds"]
    at[m["step"]] = t
def last_within(b):
    fits = [s for s in at if s % 5 == 0 and at[s] <= b]
    return max(fits) if fits else 5
print(last_within(budget), max(at))
EOF
)
for s in "$S1" "$SEND"; do evaluate "$RUNS/b_rl/checkpoint-$s" "$RUNS/b_rl_eval_$s"; done

python - "$RUNS" "$S1" "$SEND" "$K" <<'EOF'
import json, sys
runs, s1, send, k = sys.argv[1], *map(int, sys.argv[2:])
res = lambda d: json.load(open(f"{runs}/{d}/results.json"))
steps = [json.loads(l) for l in open(f"{runs}/b_rl/metrics.jsonl")]
rl_time = lambda s: sum(m["step_seconds"] for m in steps[:s])
c = json.load(open(f"{runs}/c_distill/summary.json"))
teacher_time = sum(json.loads(l)["step_seconds"] for l in open(f"{runs}/teacher/metrics.jsonl"))
if rl_time(send) <= c["seconds"]["distill"]:
    print(f"note: the RL run ({rl_time(send):.0f} s of GRPO steps) is shorter than the budget; raise B_STEPS")
rows = [("teacher: tiny (0.9M) after R1-Zero, checkpoint-200", res("teacher_eval"), f"{teacher_time:.0f} (RL)"),
        ("(a) student base, tiny-small", res("a_base"), "0"),
        (f"(b) student + R1-Zero RL, step {s1} (the budget of (c))", res(f"b_rl_eval_{s1}"), f"{rl_time(s1):.0f}"),
        (f"(b') student + R1-Zero RL, step {send} (end of the run)", res(f"b_rl_eval_{send}"), f"{rl_time(send):.0f}"),
        ("(c) student distilled from the teacher", res("c_distill/eval"), f"{c['seconds']['distill']:.0f}")]
print(f"| model | pass@1 (k={k}) | cons@{k} | mean length | training wall time (s) |")
print("| --- | --- | --- | --- | --- |")
for name, r, secs in rows:
    print(f"| {name} | {100 * r['pass@1']:.1f}% | {100 * r[f'cons@{k}']:.1f}% | {r['mean_length']:.1f} | {secs} |")
print(f"\n(c): sampling {c['seconds']['sample']:.0f} s + SFT {c['seconds']['sft']:.0f} s; "
      f"{c['sample']['kept']} traces kept of {c['sample']['sampled']} sampled; SFT {c['sft']['steps']} steps")
EOF
