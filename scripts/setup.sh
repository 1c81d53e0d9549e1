#!/usr/bin/env bash
# Install r1kit on a fresh machine: the CPU build of torch first, pinned (a looser range pulls
# gigabytes of CUDA packages), then the package with its test and ray extras (the Ray tests run in the fast suite).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q torch==2.13.0
python3 -m pip install -q -e ".[test,ray,lora]"
