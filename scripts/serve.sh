#!/usr/bin/env bash
# One command: install, migrate the SQLite database under ./var/, ensure a demo account (10.00 USD)
# and print a fresh API key for it, then serve on 127.0.0.1:8000 with the built-in solvers in-process.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/bootstrap.sh
exec .venv/bin/cracker serve --demo "$@"
