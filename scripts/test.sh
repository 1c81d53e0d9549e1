#!/usr/bin/env bash
# The README's test command: set up, then run the fast test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
python3 -m pytest -q tests
