"""GET /v2/tasks/{id} requests per second, next to a bare Starlette JSON endpoint started the same way.

Both servers are one uvicorn process with the same options, started by this script; `wrk` (Debian
package `wrk`) drives each in turn, interleaved, and the script prints the ratio of medians.

    .venv/bin/python bench/task_read_bench.py [--duration 5] [--rounds 3] [--connections 32] [--access-log]

``--access-log`` runs Cracker as deployed by default (log level info, one access line per request,
written to a file) instead of with its access log off; the bare endpoint logs nothing either way.
``--compare-src DIR`` also runs the Cracker whose ``src`` folder is DIR/src (another version, say
``git archive main src | tar -x -C DIR``) in the same rounds, to compare two versions under the same
load. Beside requests per second (which swing with whatever else the machine runs) the script
prints the server's CPU time per request, which swings far less.
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


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(url: str, key: str | None, duration: int, connections: int, pid: int) -> tuple[float, float]:
    """(requests per second, server CPU microseconds per request)."""
    before = cpu_seconds(pid)
    rps, requests = run_wrk(url, key, duration, connections)
    return rps, (cpu_seconds(pid) - before) / requests * 1e6


def run_wrk(url: str, key: str | None, duration: int, connections: int) -> tuple[float, int]:
    cmd = ["wrk", "-t", "1", "-c", str(connections), "-d", f"{duration}s", url]
    if key:
        cmd[1:1] = ["-H", f"x-solvium-auth: {key}"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        raise SystemExit(f"{url}: {non2xx.group(1)} error responses:\n{out}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    assert match and total, out
    return float(match.group(1)), int(total.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per server")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--access-log", action="store_true", help="Cracker with its access log on (to a file)")
    parser.add_argument("--compare-src", type=Path, help="also run the Cracker of DIR/src (another version)")
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

    ours_port, bare_port, base_port = free_port(), free_port(), free_port()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        log_opts = ["--log-level", "info"] if args.access_log else ["--log-level", "warning", "--no-access-log"]
        with (tmp / "server.log").open("wb") as server_log:
            ours = subprocess.Popen(
                [*cli, "serve", "--port", str(ours_port), *log_opts], env=env, stdout=server_log,
                stderr=subprocess.STDOUT,
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
        base_url = f"http://127.0.0.1:{base_port}/v2/tasks/{task['task_id']}"
        if args.compare_src:
            base_env = {**env, "PYTHONPATH": str(args.compare_src.resolve() / "src")}
            with (tmp / "base.log").open("wb") as base_log:
                base = subprocess.Popen(
                    [*cli, "serve", "--port", str(base_port), *log_opts], env=base_env, stdout=base_log,
                    stderr=subprocess.STDOUT,
                )
            procs.append(base)
            wait_up(f"http://127.0.0.1:{base_port}/v2/health", base)

        print(f"wrk: {args.connections} connections, {args.duration} s per run, {args.rounds} rounds, "
              f"access log {'on' if args.access_log else 'off'}")
        bare_rps: list[float] = []
        ours_rps: list[float] = []
        ours_cpu: list[float] = []
        base_rps: list[float] = []
        base_cpu: list[float] = []
        for round_no in range(1, args.rounds + 1):
            bare_rps.append(run_wrk(bare_url, None, args.duration, args.connections)[0])
            rps, cpu = measure(task_url, key, args.duration, args.connections, ours.pid)
            ours_rps.append(rps)
            ours_cpu.append(cpu)
            line = (f"  round {round_no}/{args.rounds}: bare {bare_rps[-1]:8.0f} req/s   cracker {rps:8.0f} req/s "
                    f"({cpu:.0f} us CPU/req)   ratio {rps / bare_rps[-1]:.2f}")
            if args.compare_src:
                rps, cpu = measure(base_url, key, args.duration, args.connections, procs[-1].pid)
                base_rps.append(rps)
                base_cpu.append(cpu)
                line += f"   compared version {rps:8.0f} req/s ({cpu:.0f} us CPU/req)"
            print(line, flush=True)
        bare_med, ours_med = statistics.median(bare_rps), statistics.median(ours_rps)
        print(f"median: bare Starlette {bare_med:.0f} req/s, cracker GET /v2/tasks/{{id}} {ours_med:.0f} req/s "
              f"({statistics.median(ours_cpu):.0f} us CPU/req)")
        print(f"ratio (cracker / bare): {ours_med / bare_med:.2f}  (target >= 0.50)")
        if args.compare_src:
            base_med, base_cpu_med = statistics.median(base_rps), statistics.median(base_cpu)
            print(f"compared version: {base_med:.0f} req/s ({base_cpu_med:.0f} us CPU/req); this version / compared: "
                  f"{ours_med / base_med:.2f} in req/s, {statistics.median(ours_cpu) / base_cpu_med:.2f} in CPU/req")
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=15)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
