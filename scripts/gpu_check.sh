#!/usr/bin/env bash
# r1kit's GPU check: one script, <= 8 minutes on one H100/H200, no internet, no package registry.
#
# It checks, on the device:
#   1. greedy r1kit sampling equals HF `generate` token for token (tiny base, float32);
#   2. the log-probs recorded while sampling equal the trainer's teacher-forced ones;
#   3. a 20-step R1-Zero run of the tiny base learns (held-out pass@1 before -> after);
#   4. bf16 GRPO steps of a randomly initialised SmolLM2-135M-shaped model (--shape qwen2.5-0.5b for
#      the other one), without and with LoRA (r 16): s/step, sampled tokens/s, peak memory, MFU;
#   5. rollout tokens/s against HF `generate` at batch 64 and 256 (benchmarks/rollout_vs_hf.py);
# and prints one summary table (exit status 1 when a check fails).
#
# What it needs beyond the repository and torch (a CUDA build on the GPU machine): r1kit's other
# runtime packages and peft. On a machine with PyPI, stage them once beside the script:
#     scripts/gpu_check.sh --stage            # pip install --target .gpu_check_deps (about 40 MB)
# which installs, without dependencies (so torch is never touched): transformers, tokenizers,
# safetensors, huggingface_hub, hf-xet, pyyaml, regex, tqdm, numpy, packaging, filelock, fsspec,
# typer, click, shellingham, rich, markdown-it-py, mdurl, pygments, typing_extensions, peft,
# accelerate, psutil. The folder travels with the repository (e.g. the device tool's `carry`);
# the tokenizers wheel is the staging machine's platform (linux x86_64, CPython 3.11 here).
# Models: none downloaded. The tiny base ships in r1kit/assets; the speed models are random.
#
# usage: scripts/gpu_check.sh [--device cuda] [--shape smollm2-135m|qwen2.5-0.5b] [--json FILE]
#        scripts/gpu_check.sh --device cpu --reduced      # the dry run (CI: tests/test_gpu_check.py)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
DEPS="$ROOT/.gpu_check_deps"
if [[ "${1:-}" == "--stage" ]]; then
  python -m pip install --no-deps --target "$DEPS" transformers tokenizers safetensors huggingface_hub hf-xet \
    pyyaml regex tqdm numpy packaging filelock fsspec typer click shellingham rich markdown-it-py mdurl \
    pygments typing_extensions peft accelerate psutil
  exit 0
fi
# torch is never staged: the machine's own (CUDA) torch is the one imported
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}${DEPS:+:$DEPS}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec python "$HERE/gpu_check.py" "$@"
