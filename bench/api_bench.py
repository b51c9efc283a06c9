"""Requests per second of the hot routes, each beside a bare Starlette endpoint (the ceiling,
bench/_ceiling.py) started the same way in the same run; prints each round and the ratio of medians.

    .venv/bin/python bench/api_bench.py [--route get|create|both] [--duration 4] [--rounds 3] [--connections 32]

- get:    GET /v2/tasks/{id} of a completed task (key check, rate limiter, a read, the envelope).
- create: POST /v2/tasks/turnstile with the sandbox's zero-work test key: the key check, the hold,
          the task row and its ledger row, then the in-process worker claims, solves and completes
          it (so each create is a whole task's writes), against a bare endpoint that parses the body.
Both: one `cracker serve` process on SQLite and one uvicorn process for the ceiling, with the same
options; `wrk -t1` (Debian package `wrk`) drives each in turn, interleaved, on the same 2 cores.
Goals (issue 20): get >= 0.6, create >= 0.25 of the ceiling.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _ceiling import free_port, start_bare, wait_up

TURNSTILE = {"url": "https://example.com", "site_key": "1x00000000000000000000AA"}
GOALS = {"get": 0.6, "create": 0.25}


def run_wrk(url: str, key: str | None, duration: int, connections: int, script: Path | None) -> float:
    cmd = ["wrk", "-t", "1", "-c", str(connections), "-d", f"{duration}s", url]
    if key:
        cmd[1:1] = ["-H", f"x-solvium-auth: {key}"]
    if script is not None:
        cmd[1:1] = ["-s", str(script)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        raise SystemExit(f"{url}: {non2xx.group(1)} error responses:\n{out}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    assert match, out
    return float(match.group(1))


def post_script(workdir: Path) -> Path:
    script = workdir / "create.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = '{json.dumps(TURNSTILE)}'\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    return script


def measure(route: str, ours: str, bare: str, key: str, args: argparse.Namespace, script: Path | None) -> float:
    bare_rps: list[float] = []
    ours_rps: list[float] = []
    for round_no in range(1, args.rounds + 1):
        bare_rps.append(run_wrk(bare, None, args.duration, args.connections, script))
        ours_rps.append(run_wrk(ours, key, args.duration, args.connections, script))
        print(f"  {route} round {round_no}/{args.rounds}: ceiling {bare_rps[-1]:8.0f} req/s   "
              f"cracker {ours_rps[-1]:8.0f} req/s   ratio {ours_rps[-1] / bare_rps[-1]:.2f}", flush=True)
    bare_med, ours_med = statistics.median(bare_rps), statistics.median(ours_rps)
    ratio = ours_med / bare_med
    print(f"{route}: ceiling (bare Starlette) {bare_med:,.0f} req/s, cracker {ours_med:,.0f} req/s, "
          f"ratio {ratio:.2f} (goal >= {GOALS[route]})", flush=True)
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--route", choices=["get", "create", "both"], default="both")
    parser.add_argument("--duration", type=int, default=4, help="seconds per wrk run")
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
        [*cli, "accounts", "create", "--name", "bench", "--balance", "1000000", "--json"],
        env=env, capture_output=True, text=True, check=True,
    )
    key = json.loads(created.stdout)["api_key"]
    port = free_port()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        ours = subprocess.Popen(
            [*cli, "serve", "--port", str(port), "--log-level", "warning", "--no-access-log"], env=env
        )
        procs.append(ours)
        wait_up(f"http://127.0.0.1:{port}/v2/health", ours)
        headers = {"x-solvium-auth": key}
        task = httpx.post(f"http://127.0.0.1:{port}/v2/tasks/turnstile", headers=headers, json=TURNSTILE).json()
        task_url = f"http://127.0.0.1:{port}/v2/tasks/{task['task_id']}"
        for _ in range(100):
            envelope = httpx.get(task_url, headers=headers).json()
            if envelope["status"] == "completed":
                break
            time.sleep(0.05)
        bare, bare_port = start_bare(tmp, envelope)
        procs.append(bare)
        print(f"wrk: {args.connections} connections, {args.duration} s per run, {args.rounds} rounds; "
              f"load average before: {os.getloadavg()[0]:.1f}")
        if args.route in ("get", "both"):
            measure("get", task_url, f"http://127.0.0.1:{bare_port}/v2/tasks/{task['task_id']}", key, args, None)
        if args.route in ("create", "both"):
            script = post_script(tmp)
            measure("create", f"http://127.0.0.1:{port}/v2/tasks/turnstile",
                    f"http://127.0.0.1:{bare_port}/v2/tasks/turnstile", key, args, script)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=15)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
