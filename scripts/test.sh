#!/usr/bin/env bash
# The README's test command: set up everything (system packages the tests use, torch, r1kit),
# then run the fast test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
# A headless browser for the report test; a system python3 that the code sandbox's unprivileged
# users may run (a pyenv/venv interpreter under /root is not readable by them).
need=""
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || need="$need chromium"
[ -x /usr/bin/python3 ] || [ -x /usr/local/bin/python3 ] || need="$need python3"
if [ -n "$need" ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need >/dev/null
fi
bash scripts/setup.sh
python3 -m pytest -q tests
