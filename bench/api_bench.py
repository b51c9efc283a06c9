"""Requests per second of the hot routes, each beside a bare Starlette endpoint (the ceiling,
bench/_ceiling.py) started the same way in the same run; prints each round and the ratio of medians.

    .venv/bin/python bench/api_bench.py [--route get|create|both] [--duration 4] [--rounds 3] [--connections 32]

- get:    GET /v2/tasks/{id} of a completed task (key check, rate limiter, a read, the envelope).
- create: POST /v2/tasks/turnstile with the sandbox's zero-work test key: the key check, the hold,
          the task row and its ledger row, then the in-process worker claims, solves and completes
          it, against a bare endpoint that parses the body. A run lasts until every task it created
          is completed (see ``run_one``): the rate is of whole tasks, not of acknowledged creates.
Both: one `cracker serve` process on SQLite and one uvicorn process for the ceiling, with the same
options; `wrk -t1` (Debian package `wrk`) drives each in turn, interleaved, on the same 2 cores.
Goals (issue 20): get >= 0.6, create >= 0.25 of the ceiling.

Beside requests per second, which swing with whatever else the machine runs, it prints each
server's CPU time per request (from /proc), which swings far less: the ratio of the ceiling's CPU
per request to ours is the steadier figure on a busy machine. ``--access-log`` runs Cracker as
deployed by default (an access line per request, to a file); ``--compare-src DIR`` also runs the
Cracker whose ``src`` is DIR/src (another version, e.g. ``git archive main src | tar -x -C DIR``)
in the same rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _ceiling import free_port, start_bare, wait_up
from _sandbox_task import completed_task, post_script

GOALS = {"get": 0.6, "create": 0.25}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Server:
    label: str
    url: str
    pid: int
    key: str | None
    #: Its SQLite file, where creates must also be drained (None for the ceiling and the poll).
    db: Path | None = None


def run_wrk(url: str, key: str | None, duration: int, connections: int, script: Path | None) -> tuple[float, int]:
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
    total = re.search(r"(\d+) requests in", out)
    assert match and total, out
    return float(match.group(1)), int(total.group(1))


def live_tasks(db: Path) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return int(conn.execute("SELECT count(*) FROM tasks WHERE status IN ('pending', 'running')").fetchone()[0])


def run_one(server: Server, args: argparse.Namespace, script: Path | None) -> tuple[float, float]:
    """(requests per second, the server's CPU microseconds per request).

    For creates, a request counts once its task is completed: after wrk stops, the run goes on
    until the in-process worker has drained what is still pending or running (the time and CPU
    that takes count too), so a worker falling behind the creates cannot flatter the rate."""
    before, started = cpu_seconds(server.pid), time.monotonic()
    rps, requests = run_wrk(server.url, server.key, args.duration, args.connections, script)
    if server.db is not None:
        drain_by = time.monotonic() + 120
        while live_tasks(server.db) and time.monotonic() < drain_by:
            time.sleep(0.02)
        if live_tasks(server.db):
            raise SystemExit(f"{server.label}: tasks still live 120 s after the run")
        rps = requests / (time.monotonic() - started)
    return rps, (cpu_seconds(server.pid) - before) / requests * 1e6


def measure(route: str, servers: list[Server], args: argparse.Namespace, script: Path | None) -> None:
    """Interleaved rounds over ``servers`` (the ceiling first); medians and ratios to the ceiling."""
    rps: dict[str, list[float]] = {s.label: [] for s in servers}
    cpu: dict[str, list[float]] = {s.label: [] for s in servers}
    for round_no in range(1, args.rounds + 1):
        parts = []
        for server in servers:
            r, c = run_one(server, args, script)
            rps[server.label].append(r)
            cpu[server.label].append(c)
            parts.append(f"{server.label} {r:7.0f} req/s {c:5.0f} us CPU/req")
        print(f"  {route} round {round_no}/{args.rounds}: " + "   ".join(parts), flush=True)
    ceiling = servers[0].label
    ceiling_rps, ceiling_cpu = statistics.median(rps[ceiling]), statistics.median(cpu[ceiling])
    print(f"{route}: ceiling (bare Starlette) {ceiling_rps:,.0f} req/s, {ceiling_cpu:.0f} us CPU/req")
    for server in servers[1:]:
        ours_rps, ours_cpu = statistics.median(rps[server.label]), statistics.median(cpu[server.label])
        print(f"{route}: {server.label} {ours_rps:,.0f} req/s, {ours_cpu:.0f} us CPU/req; ratio to the ceiling "
              f"{ours_rps / ceiling_rps:.2f} in req/s, {ceiling_cpu / ours_cpu:.2f} in CPU/req "
              f"(goal >= {GOALS[route]})", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--route", choices=["get", "create", "both"], default="both")
    parser.add_argument("--duration", type=int, default=4, help="seconds per wrk run")
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

    def account(environment: dict[str, str]) -> str:
        created = subprocess.run(
            [*cli, "accounts", "create", "--name", "bench", "--balance", "1000000", "--json"],
            env=environment, capture_output=True, text=True, check=True,
        )
        return str(json.loads(created.stdout)["api_key"])

    key = account(env)
    port, base_port = free_port(), free_port()
    log_opts = ["--log-level", "info"] if args.access_log else ["--log-level", "warning", "--no-access-log"]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        with (tmp / "server.log").open("wb") as server_log:
            ours = subprocess.Popen([*cli, "serve", "--port", str(port), *log_opts], env=env, stdout=server_log,
                                    stderr=subprocess.STDOUT)
        procs.append(ours)
        wait_up(f"http://127.0.0.1:{port}/v2/health", ours)
        base = None
        if args.compare_src:
            # Its own database: an idle server's in-process worker must not solve the other's tasks.
            base_env = {**env, "PYTHONPATH": str(args.compare_src.resolve() / "src"),
                        "CRACKER_DATABASE_URL": f"sqlite:///{tmp / 'compared.db'}"}
            base_key = account(base_env)
            with (tmp / "base.log").open("wb") as base_log:
                base = subprocess.Popen([*cli, "serve", "--port", str(base_port), *log_opts], env=base_env,
                                        stdout=base_log, stderr=subprocess.STDOUT)
            procs.append(base)
            wait_up(f"http://127.0.0.1:{base_port}/v2/health", base)
        else:
            base_key = ""
        envelope = completed_task(port, key)
        base_task = completed_task(base_port, base_key)["task_id"] if base is not None else ""
        bare, bare_port = start_bare(tmp, envelope)
        procs.append(bare)
        print(f"wrk: {args.connections} connections, {args.duration} s per run, {args.rounds} rounds, access log "
              f"{'on' if args.access_log else 'off'}; load average before: {os.getloadavg()[0]:.1f}")

        def servers(path: str, base_path: str = "", drained: bool = False) -> list[Server]:
            found = [Server("ceiling", f"http://127.0.0.1:{bare_port}{path}", bare.pid, None),
                     Server("cracker", f"http://127.0.0.1:{port}{path}", ours.pid, key,
                            tmp / "bench.db" if drained else None)]
            if base is not None:
                found.append(Server("compared", f"http://127.0.0.1:{base_port}{base_path or path}", base.pid,
                                    base_key, tmp / "compared.db" if drained else None))
            return found

        if args.route in ("get", "both"):
            measure("get", servers(f"/v2/tasks/{envelope['task_id']}", f"/v2/tasks/{base_task}"), args, None)
        if args.route in ("create", "both"):
            measure("create", servers("/v2/tasks/turnstile", drained=True), args, post_script(tmp))
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=15)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
