#!/usr/bin/env bash
# One command: install with the dev tools, then lint, type-check and run the whole test suite.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/bootstrap.sh dev
echo "== ruff"; .venv/bin/ruff check src tests bench
echo "== mypy (strict)"; .venv/bin/mypy src
echo "== pytest"; .venv/bin/pytest "$@"
