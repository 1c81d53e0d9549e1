#!/usr/bin/env bash
# The README's test command: set up everything, then run the fast test suite.
#
# What it installs:
# - with apt (as root, only what is missing): `chromium`, because the report test opens the HTML
#   report in a real headless browser; and a system `python3` (/usr/bin/python3), because the code
#   sandbox runs model code as unprivileged users, who cannot read an interpreter kept in a
#   virtual environment or pyenv under /root.
# - with pip (scripts/setup.sh): torch==2.13.0 (CPU build), then r1kit with its test and ray extras.
set -euo pipefail
cd "$(dirname "$0")/.."
need=""
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || need="$need chromium"
[ -x /usr/bin/python3 ] || [ -x /usr/local/bin/python3 ] || need="$need python3"
if [ -n "$need" ]; then
  echo "scripts/test.sh: installing with apt-get:$need (chromium: the report test's headless browser;" \
       "python3: the system interpreter the code sandbox's unprivileged users run)" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need >/dev/null
fi
bash scripts/setup.sh
python3 -m pytest -q tests
