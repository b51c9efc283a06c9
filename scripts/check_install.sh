#!/usr/bin/env bash
# What a new user gets, proven from nothing (CI runs it after the test suite; it needs only python3,
# git and the package registry):
#  1. the wheel built from this tree, installed with no extras into a fresh venv (so the ONNX model,
#     the migrations and every dependency must ship): `cracker --version`, `cracker migrate`,
#     `cracker serve`, /v2/health, an account from the CLI, a pow-sha256 and an image-to-text task
#     over HTTP seen completed, then SIGTERM: a clean exit and no process left behind;
#  2. the SDK in a venv holding httpx alone, against that server;
#  3. scripts/serve.sh from a fresh clone of this repository's HEAD, up to its first completed task.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$PWD
PYTHON="${PYTHON:-python3}"
work=$(mktemp -d)
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill -9 "$server_pid" 2>/dev/null || true; fi
  pkill -9 -f "$work/" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

fail() { echo "check_install: FAILED: $*" >&2; exit 1; }
free_port() { "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# SIGTERM, then require a clean exit within 30 s and no process of that install left running.
stop_server() {
  local pid=$1 log=$2 prefix=$3 status=0
  kill -TERM "$pid"
  for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  if kill -0 "$pid" 2>/dev/null; then tail -20 "$log"; fail "the server did not stop within 30 s of SIGTERM"; fi
  wait "$pid" || status=$?
  server_pid=""
  [ "$status" -eq 0 ] || { tail -20 "$log"; fail "the server exited with status $status after SIGTERM"; }
  # The forkserver and resource tracker notice their parent's exit on their own, a moment later.
  for _ in $(seq 20); do pgrep -f "$prefix" >/dev/null || break; sleep 0.5; done
  if pgrep -af "$prefix" >/dev/null; then pgrep -af "$prefix"; fail "processes of the stopped server are still running"; fi
  echo "stopped cleanly (exit 0, no process left)"
}

echo "== 1. the wheel, installed with no extras into a fresh venv"
"$PYTHON" -m pip wheel --quiet --no-deps --wheel-dir "$work/dist" "$repo"
"$PYTHON" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet --upgrade pip
"$work/venv/bin/python" -m pip install --quiet "$work"/dist/cracker-*.whl
cracker="$work/venv/bin/cracker"
cd "$work"  # nothing written into the repository
export CRACKER_DATABASE_URL="sqlite:///$work/user/cracker.db"
"$cracker" --version
"$cracker" migrate
port=$(free_port)
"$cracker" serve --port "$port" >"$work/serve.log" 2>&1 &
server_pid=$!
"$work/venv/bin/python" "$repo/scripts/smoke_client.py" --url "http://127.0.0.1:$port" --types "" \
  || { tail -20 "$work/serve.log"; fail "no health answer"; }
key=$("$cracker" accounts create --name smoke --balance 1.00 --json \
      | "$work/venv/bin/python" -c 'import json, sys; print(json.load(sys.stdin)["api_key"])')
"$work/venv/bin/python" "$repo/scripts/smoke_client.py" --url "http://127.0.0.1:$port" --key "$key" \
  || { tail -20 "$work/serve.log"; fail "the first tasks did not complete"; }
# The dashboard's templates and the vendored Swagger UI are package data: the wheel must carry them.
"$work/venv/bin/python" - "http://127.0.0.1:$port" <<'PY' || { tail -20 "$work/serve.log"; fail "the dashboard or /docs is missing its files"; }
import sys, urllib.request
base = sys.argv[1]
for path, needle in (("/dashboard/login", b"API key"), ("/docs", b"swagger-ui-bundle.js"),
                     ("/redoc", b"redoc.standalone.js"), ("/dashboard/static/redoc/redoc.standalone.js", b"Redoc"),
                     ("/dashboard/static/swagger-ui/swagger-ui-bundle.js", b"SwaggerUIBundle"),
                     ("/dashboard/static/dashboard.css", b"--accent")):
    with urllib.request.urlopen(base + path, timeout=10) as response:
        assert needle in response.read(), path
PY

echo "== 2. the SDK with httpx alone"
"$PYTHON" -m venv "$work/sdk-venv"
"$work/sdk-venv/bin/python" -m pip install --quiet httpx
"$work/sdk-venv/bin/python" -m pip install --quiet --no-deps "$work"/dist/cracker-*.whl
CRACKER_URL="http://127.0.0.1:$port" CRACKER_API_KEY="$key" "$work/sdk-venv/bin/python" - <<'EOF'
import importlib.util
import os

from cracker.sdk import Solvium

assert importlib.util.find_spec("pydantic") is None, "the SDK venv must hold httpx alone"
with Solvium(api_key=os.environ["CRACKER_API_KEY"], base_url=os.environ["CRACKER_URL"]) as client:
    task = client.pow_sha256_sync(data="sdk", difficulty=3)
    assert task["status"] == "completed", task
    print(f"SDK: pow-sha256 {task['status']}, balance {client.balance_sync()['balance']} USD")
EOF
stop_server "$server_pid" "$work/serve.log" "$work/venv/"

echo "== 3. scripts/serve.sh from a fresh clone"
git clone --quiet "$repo" "$work/clone"
port=$(free_port)
unset CRACKER_DATABASE_URL
bash "$work/clone/scripts/serve.sh" --port "$port" >"$work/clone.log" 2>&1 &
server_pid=$!
for _ in $(seq 600); do
  grep -q 'api_key:' "$work/clone.log" && break
  kill -0 "$server_pid" 2>/dev/null || { tail -30 "$work/clone.log"; fail "scripts/serve.sh exited before printing a key"; }
  sleep 1
done
key=$(grep -o 'api_key: *[^ ]*' "$work/clone.log" | head -1 | awk '{print $2}')
[ -n "$key" ] || { tail -30 "$work/clone.log"; fail "scripts/serve.sh printed no key within 10 minutes"; }
"$work/clone/.venv/bin/python" "$repo/scripts/smoke_client.py" --url "http://127.0.0.1:$port" --key "$key" \
  --types pow-sha256 --health-timeout 120 || { tail -20 "$work/clone.log"; exit 1; }
stop_server "$server_pid" "$work/clone.log" "$work/clone/"
echo "check_install: OK"
