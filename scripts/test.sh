#!/usr/bin/env bash
# One command: install with the dev tools, then lint, type-check, check the layers and run the whole test suite.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# ocr-train too: the training code (torch, from the CPU wheel this machine keeps) has tests.
bash scripts/bootstrap.sh dev,ocr-train
# CapMonster Cloud's published client (the protocol tests drive it unchanged) pins exact old releases
# of pydantic, aiohttp and others that would downgrade ours; without its pins it works with ours
# (aiohttp comes from the dev extra), so it is installed on its own, without dependencies.
.venv/bin/python -c "import capmonstercloudclient" 2>/dev/null \
  || .venv/bin/python -m pip install --quiet --no-deps "capmonstercloudclient==4.3.1"
# The official JavaScript verifiers some proof-of-work tests run against (skipped without npm).
if command -v npm >/dev/null 2>&1 && [ ! -d tests/unit/pow/node/node_modules ]; then
  (cd tests/unit/pow/node && npm ci --silent --no-audit --no-fund)
fi
# axe-core, the accessibility scan the dashboard's browser tests inject (skipped without npm).
if command -v npm >/dev/null 2>&1 && [ ! -d tests/acceptance/dashboard_node/node_modules ]; then
  (cd tests/acceptance/dashboard_node && npm ci --silent --no-audit --no-fund)
fi
echo "== ruff"; .venv/bin/ruff check src tests bench docs/research
echo "== mypy (strict)"; .venv/bin/mypy src
# Every import declared where it is used (pyproject [tool.deptry]); the second run treats the
# ocr-train extra as a dev group, so the service importing a training-only package is a finding.
echo "== deptry"; .venv/bin/deptry src
.venv/bin/deptry src --extend-exclude 'src/cracker/ocr_training' --optional-dependencies-dev-groups dev,ocr-train
echo "== import-linter (the layer rules in pyproject.toml)"; .venv/bin/lint-imports
# Two processes, each test file whole in one of them (its module fixtures, its servers, its order
# kept): the suite's waits overlap, 23 minutes became 14 on a slow 2-core VM.
echo "== pytest"; .venv/bin/pytest -n "${CRACKER_TEST_PROCESSES:-2}" --dist loadfile "$@"
