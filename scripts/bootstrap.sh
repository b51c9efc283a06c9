#!/usr/bin/env bash
# Create .venv (once) and install Cracker into it; sourced by serve.sh and test.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-python3}"
extras="${1:-}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=".venv/.installed${extras:+-$extras}"
# Reinstall only when the project's metadata or native sources changed since the last install.
if [ ! -f "$stamp" ] || [ -n "$(find pyproject.toml setup.py src/cracker -newer "$stamp" \( -name '*.toml' -o -name 'setup.py' -o -name '*.c' \) 2>/dev/null | head -1)" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e ".${extras:+[$extras]}"
  touch "$stamp"
fi
