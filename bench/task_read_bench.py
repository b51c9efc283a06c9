"""GET /v2/tasks/{id} requests per second, next to a bare Starlette JSON endpoint started the same way.

Both servers are one uvicorn process with the same options, started by this script; `wrk` (Debian
package `wrk`) drives each in turn, interleaved, and the script prints the ratio of medians.

    .venv/bin/python bench/task_read_bench.py [--duration 5] [--rounds 3] [--connections 32]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

BARE_APP = '''
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

BODY = {BODY}

async def task(request):
    return JSONResponse(BODY)

app = Starlette(routes=[Route("/v2/tasks/{{task_id}}", task)])
'''

UVICORN_OPTS = ["--log-level", "warning", "--no-access-log", "--no-server-header"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_up(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited early ({url})")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit(f"server did not start: {url}")


def run_wrk(url: str, key: str | None, duration: int, connections: int) -> float:
    cmd = ["wrk", "-t", "1", "-c", str(connections), "-d", f"{duration}s", url]
    if key:
        cmd[1:1] = ["-H", f"x-solvium-auth: {key}"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        raise SystemExit(f"{url}: {non2xx.group(1)} error responses:\n{out}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    assert match, out
    return float(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per server")
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("needs wrk: apt-get install wrk")

    tmp = Path(tempfile.mkdtemp(prefix="cracker-bench-"))
    env = {
        **os.environ,
        "CRACKER_DATABASE_URL": f"sqlite:///{tmp / 'bench.db'}",
        "CRACKER_RATE_LIMIT_PER_S": "0",
        "CRACKER_CPU_WORKERS": "1",
    }
    cli = [sys.executable, "-m", "cracker"]
    created = subprocess.run(
        [*cli, "accounts", "create", "--name", "bench", "--balance", "10", "--json"],
        env=env, capture_output=True, text=True, check=True,
    )
    key = json.loads(created.stdout)["api_key"]

    ours_port, bare_port = free_port(), free_port()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        ours = subprocess.Popen(
            [*cli, "serve", "--port", str(ours_port), "--log-level", "warning", "--no-access-log"], env=env
        )
        procs.append(ours)
        wait_up(f"http://127.0.0.1:{ours_port}/v2/health", ours)
        headers = {"x-solvium-auth": key}
        task = httpx.post(
            f"http://127.0.0.1:{ours_port}/v2/tasks/turnstile", headers=headers,
            json={"url": "https://example.com", "site_key": "1x00000000000000000000AA"},
        ).json()
        task_url = f"http://127.0.0.1:{ours_port}/v2/tasks/{task['task_id']}"
        for _ in range(100):
            envelope = httpx.get(task_url, headers=headers).json()
            if envelope["status"] == "completed":
                break
            time.sleep(0.05)
        # The bare endpoint answers the very same JSON document, so only the work differs.
        (tmp / "bare_app.py").write_text(BARE_APP.format(BODY=repr(envelope)))
        bare = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "bare_app:app", "--port", str(bare_port), *UVICORN_OPTS],
            cwd=tmp, env=env,
        )
        procs.append(bare)
        bare_url = f"http://127.0.0.1:{bare_port}/v2/tasks/{task['task_id']}"
        wait_up(bare_url, bare)

        print(f"wrk: {args.connections} connections, {args.duration} s per run, {args.rounds} rounds")
        bare_rps: list[float] = []
        ours_rps: list[float] = []
        for round_no in range(1, args.rounds + 1):
            bare_rps.append(run_wrk(bare_url, None, args.duration, args.connections))
            ours_rps.append(run_wrk(task_url, key, args.duration, args.connections))
            print(f"  round {round_no}/{args.rounds}: bare {bare_rps[-1]:8.0f} req/s   "
                  f"cracker {ours_rps[-1]:8.0f} req/s   ratio {ours_rps[-1] / bare_rps[-1]:.2f}", flush=True)
        bare_med, ours_med = statistics.median(bare_rps), statistics.median(ours_rps)
        print(f"median: bare Starlette {bare_med:.0f} req/s, cracker GET /v2/tasks/{{id}} {ours_med:.0f} req/s")
        print(f"ratio (cracker / bare): {ours_med / bare_med:.2f}  (target >= 0.50)")
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=15)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
