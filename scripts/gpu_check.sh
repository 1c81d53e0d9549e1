#!/usr/bin/env bash
# r1kit's GPU check: one script, <= 8 minutes on one H100/H200, no internet, no package registry.
#
# It checks, on the device:
#   1. greedy r1kit sampling equals HF `generate` token for token (tiny base, float32);
#   2. the log-probs recorded while sampling equal the trainer's teacher-forced ones;
#   3. a 20-step R1-Zero run of the tiny base learns (held-out pass@1 before -> after);
#   4. bf16 GRPO steps of a randomly initialised SmolLM2-135M-shaped model (--shape qwen2.5-0.5b for
#      the other one), without and with LoRA (r 16): s/step, sampled tokens/s, peak memory, MFU;
#   5. rollout tokens/s against HF `generate` at batch 64 and 256, with early stopping and fixed length (benchmarks/rollout_vs_hf.py);
# and prints one summary table (exit status 1 when a check fails).
#
# What it needs beyond the repository and torch (a CUDA build on the GPU machine): r1kit's other
# runtime packages and peft, as wheels staged beside the script (40 MB for CPython 3.11 on linux
# x86_64) by running, once, on a machine with PyPI:
#     scripts/gpu_check.sh --stage      # pip download --no-deps into .gpu_check_deps/wheels
# which fetches exactly these, at the versions installed there (pinned by `pip download`):
#     transformers tokenizers safetensors huggingface_hub pyyaml regex tqdm numpy packaging filelock
#     fsspec typer click shellingham rich markdown-it-py mdurl pygments typing_extensions peft
#     accelerate psutil
# The .gpu_check_deps folder travels with the repository (the device tool's `carry`). On the GPU
# machine, if `import transformers, peft` fails, the script installs those wheels from the folder
# (pip --no-index --no-deps --target .gpu_check_deps/site: local files only, torch never touched).
# Models: none downloaded. The tiny base ships in r1kit/assets; the speed models are random.
#
# usage: scripts/gpu_check.sh [--device cuda] [--shape smollm2-135m|qwen2.5-0.5b] [--json FILE]
#        scripts/gpu_check.sh --device cpu --reduced      # the dry run (CI: tests/test_gpu_check.py)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
DEPS="$ROOT/.gpu_check_deps"
PACKAGES="transformers tokenizers safetensors huggingface_hub pyyaml regex tqdm numpy packaging filelock fsspec
  typer click shellingham rich markdown-it-py mdurl pygments typing_extensions peft accelerate psutil"
if [[ "${1:-}" == "--stage" ]]; then
  pins=$(python - $PACKAGES <<'PY'
import sys
from importlib import metadata
for name in sys.argv[1:]:
    try:
        print(f"{name}=={metadata.version(name)}")
    except metadata.PackageNotFoundError:
        print(name)
PY
)
  python -m pip download --no-deps -d "$DEPS/wheels" $pins
  du -sh "$DEPS/wheels"
  exit 0
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
if ! python -c "import transformers, peft" 2>/dev/null; then
  [[ -d "$DEPS/wheels" ]] || { echo "gpu_check: transformers/peft missing and no $DEPS/wheels (run --stage)" >&2; exit 2; }
  [[ -d "$DEPS/site" ]] || python -m pip install --no-index --no-deps --target "$DEPS/site" "$DEPS"/wheels/*.whl
  # torch is never staged: the machine's own (CUDA) torch is the one imported
  export PYTHONPATH="$PYTHONPATH:$DEPS/site"
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec python "$HERE/gpu_check.py" "$@"
