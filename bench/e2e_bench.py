"""End-to-end benchmark: create a task, solve it with a zero-work solver (the sandbox's Turnstile
test key), observe its completion by long-poll (`GET /v2/tasks/{id}?wait=10`).

    .venv/bin/python bench/e2e_bench.py            # about 2 minutes; needs a local PostgreSQL

Two set-ups, each measured twice:
- SQLite, one `cracker serve` process with its in-process worker;
- PostgreSQL, two `cracker serve` processes (CRACKER_IN_PROCESS_WORKERS=false) and two
  `cracker worker` processes, the load spread over both API processes.
"idle": one client, one task at a time: latency from sending the create to receiving the completed
envelope (p50, p99). "loaded": N concurrent clients, each in a create -> long-poll loop: completed
tasks per second. The load generator runs on the same machine (a raw asyncio HTTP client, uvloop).

The ceiling, measured in the same run with the same client (bench/_ceiling.py): a bare Starlette
endpoint that parses the create's body and answers the envelope, driven the same way, one request
per loop instead of a task's create and polls. It is measured before the set-ups and after them,
and the ratios are taken against the mean of the two (both are printed, and how far apart).
Goals (issue 20), PostgreSQL: completed tasks/s at least 0.12 of the ceiling's requests/s, idle p50
under 3x the ceiling's own request latency (its p50 with the loaded run's clients, as wrk reports
latency; the ratio to its idle request, a single round trip with nothing to do, is printed beside it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))
# The cluster helper lives with the crash test that CI runs (tests/acceptance/cluster.py); this benchmark borrows it.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "acceptance"))
from _ceiling import start_bare
from _rawhttp import Connection
from cluster import Cluster, create_database, drop_database, free_port

BODY = {"url": "https://bench.example", "site_key": "1x00000000000000000000AA"}
#: What the bare endpoint answers: a create's envelope, of the size Cracker's is.
CEILING_ENVELOPE = {"task_id": "0" * 36, "type": "turnstile", "status": "pending", "solution": None, "error": None,
                    "cost": None, "created_at": "2026-12-01T00:00:00.000Z", "started_at": None, "completed_at": None}


async def one_task(conn: Connection) -> float:
    started = time.perf_counter()
    status, created = await conn.request("POST", "/v2/tasks/turnstile", BODY)
    if status != 201:
        raise RuntimeError(f"create answered {status}: {created}")
    path = f"/v2/tasks/{created['task_id']}?wait=10"
    while True:
        _, task = await conn.request("GET", path)
        if task["status"] in ("completed", "rejected"):
            if task["status"] != "completed":
                raise RuntimeError(f"task rejected: {task}")
            return time.perf_counter() - started


async def one_request(conn: Connection) -> float:
    """The ceiling's unit of work: one create-shaped request, answered at once."""
    started = time.perf_counter()
    status, _ = await conn.request("POST", "/v2/tasks/turnstile", BODY)
    if status != 201:
        raise RuntimeError(f"ceiling answered {status}")
    return time.perf_counter() - started


Unit = Callable[[Connection], Awaitable[float]]


async def idle_latency(ports: list[int], keys: list[str], count: int, unit: Unit = one_task) -> list[float]:
    conns = [Connection("127.0.0.1", p, keys[0]) for p in ports]
    for conn in conns:  # warm-up: connections, caches, prepared statements
        for _ in range(20):
            await unit(conn)
    out = []
    for i in range(count):
        out.append(await unit(conns[i % len(conns)]))
        await asyncio.sleep(0.002)  # an idle queue: nothing else in flight
    for conn in conns:
        conn.close()
    return out


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of one process so far; 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _group_pids(leader: int) -> list[int]:
    """The processes of ``leader``'s process group (a server and its proof-of-work pool)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                if int((entry / "stat").read_text().rpartition(")")[2].split()[2]) == leader:
                    pids.append(int(entry.name))
    return pids


def _postgres_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() == "postgres":
                    pids.append(int(entry.name))
    return pids


class CpuByRole:
    """CPU seconds per role (API processes, worker processes, PostgreSQL's server processes, the
    load generator) between ``start`` and ``stop``: where a completed task's CPU goes."""

    def __init__(self, cluster: Cluster) -> None:
        self._roles: dict[str, list[int]] = {
            "API processes": [p.pid for p in cluster.apis.values()],
            "worker processes": [p.pid for p in cluster.workers if p is not None],
        }
        self._before: dict[str, float] = {}
        self.spent: dict[str, float] = {}

    def _read(self) -> dict[str, float]:
        out = {role: sum(_cpu_s(pid) for leader in leaders for pid in _group_pids(leader))
               for role, leaders in self._roles.items()}
        if self._roles["worker processes"]:
            out["PostgreSQL server processes"] = sum(_cpu_s(pid) for pid in _postgres_pids())
        out["load generator (this process)"] = time.process_time()
        return out

    def start(self) -> None:
        self._before = self._read()

    def stop(self) -> None:
        after = self._read()
        self.spent = {role: after[role] - self._before.get(role, 0.0) for role in after}

    def report(self, tasks: float) -> str:
        parts = [f"{role} {spent / tasks * 1e6:,.0f} us" for role, spent in self.spent.items() if tasks]
        return "CPU per completed task: " + ", ".join(parts)


async def throughput(
    ports: list[int], keys: list[str], clients: int, seconds: float, unit: Unit = one_task,
    cpu: CpuByRole | None = None,
) -> tuple[float, list[float]]:
    stop_at = 0.0
    done: list[float] = []

    async def client(index: int) -> None:
        conn = Connection("127.0.0.1", ports[index % len(ports)], keys[index % len(keys)])
        try:
            while time.perf_counter() < stop_at:
                latency = await unit(conn)
                if time.perf_counter() < stop_at:
                    done.append(latency)
        finally:
            conn.close()

    warm_until = time.perf_counter() + 2
    stop_at = warm_until + 2 + seconds
    runners = [asyncio.create_task(client(i)) for i in range(clients)]
    await asyncio.sleep(max(0.0, warm_until + 2 - time.perf_counter()))
    measured_from, counted_before = time.perf_counter(), len(done)
    if cpu is not None:
        cpu.start()
    await asyncio.sleep(max(0.0, stop_at - time.perf_counter()))
    if cpu is not None:
        cpu.stop()
    await asyncio.gather(*runners)
    elapsed = min(time.perf_counter(), stop_at) - measured_from
    measured = done[counted_before:]
    return len(measured) / elapsed, measured


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] * 1000 if len(values) > 1 else 0.0


@dataclass(frozen=True)
class Ceiling:
    idle_p50_ms: float
    #: Its request latency under the loaded run's concurrency (what wrk reports as latency).
    loaded_p50_ms: float
    rate: float

    @staticmethod
    def mean(first: Ceiling, second: Ceiling) -> Ceiling:
        return Ceiling((first.idle_p50_ms + second.idle_p50_ms) / 2, (first.loaded_p50_ms + second.loaded_p50_ms) / 2,
                       (first.rate + second.rate) / 2)


def measure_ceiling(workdir: Path, args: argparse.Namespace, when: str) -> Ceiling:
    """The bare endpoint, driven by the same client as the set-ups, in this run."""
    proc, port = start_bare(workdir, CEILING_ENVELOPE)
    try:
        idle = uvloop.run(idle_latency([port], ["none"], args.idle_tasks, one_request))
        rate, loaded = uvloop.run(throughput([port], ["none"], args.clients, args.seconds, one_request))
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    ceiling = Ceiling(pct(idle, 50), pct(loaded, 50), rate)
    print(f"ceiling (bare Starlette, same client), {when}: {ceiling.rate:,.0f} requests/s and request p50 "
          f"{ceiling.loaded_p50_ms:.2f} ms with {args.clients} clients; idle request p50 {ceiling.idle_p50_ms:.2f} ms",
          flush=True)
    return ceiling


def report(label: str, idle: list[float], rate: float, loaded: list[float], clients: int, ceiling: Ceiling) -> str:
    return (f"| {label} | {pct(idle, 50):.1f} ms = {pct(idle, 50) / ceiling.loaded_p50_ms:.1f} x "
            f"({pct(idle, 50) / ceiling.idle_p50_ms:.0f} x idle) | "
            f"{pct(idle, 99):.1f} ms | {rate:,.0f} tasks/s = {rate / ceiling.rate:.3f} x ({clients} clients) | "
            f"{pct(loaded, 50):.1f} ms | {pct(loaded, 99):.1f} ms |")


@dataclass(frozen=True)
class SetupResult:
    label: str
    idle: list[float]
    rate: float
    loaded: list[float]


def run_setup(label: str, cluster: Cluster, ports: list[int], args: argparse.Namespace) -> SetupResult:
    keys = [cluster.new_account("100000.00")[1] for _ in range(args.accounts)]
    idle = uvloop.run(idle_latency(ports, keys, args.idle_tasks))
    cpu = CpuByRole(cluster)
    rate, loaded = uvloop.run(throughput(ports, keys, args.clients, args.seconds, cpu=cpu))
    print(f"  {label}: {rate:,.0f} tasks/s; {cpu.report(rate * args.seconds)}", flush=True)
    return SetupResult(label, idle, rate, loaded)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--idle-tasks", type=int, default=400)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--accounts", type=int, default=8, help="client accounts the load is spread over")
    parser.add_argument("--only", choices=["sqlite", "postgresql"])
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="cracker-e2e-"))
    # Measured before the set-ups and again after them, and the ratios taken against the mean: on
    # these VMs the ceiling alone moved by up to 1.6x from one run to the next, and one
    # measurement made the same code's ratio move with it.
    first = measure_ceiling(workdir, args, "before the set-ups")
    results: list[SetupResult] = []

    if args.only in (None, "sqlite"):
        cluster = Cluster(f"sqlite:///{workdir / 'bench.db'}", workdir)
        try:
            cluster.migrate()
            port = free_port()
            cluster.start_api(port, in_process_workers=True)
            cluster.wait_healthy(port)
            results.append(run_setup("SQLite, 1 process", cluster, [port], args))
        finally:
            cluster.stop()

    if args.only in (None, "postgresql"):
        name, url = create_database("cracker_e2e")
        cluster = Cluster(url, workdir, worker_args=["--concurrency", "64"])
        try:
            cluster.migrate()
            ports = cluster.start_scaled_out()
            time.sleep(1.5)  # the API processes see the workers at their next registry refresh
            results.append(run_setup("PostgreSQL, 2 API + 2 worker processes", cluster, ports, args))
        finally:
            cluster.stop()
            drop_database(name)
    second = measure_ceiling(workdir, args, "after them")
    ceiling = Ceiling.mean(first, second)
    print(f"ceiling used: the mean, {ceiling.rate:,.0f} requests/s, request p50 {ceiling.loaded_p50_ms:.2f} ms "
          f"(its two measurements {abs(first.rate - second.rate) / ceiling.rate:.0%} apart in requests/s)")
    print("| set-up | idle p50 (x ceiling's loaded request p50; x its idle one) | idle p99 "
          "| loaded throughput (x ceiling's requests/s) | loaded p50 | loaded p99 |")
    print("|---|---|---|---|---|---|")
    for result in results:
        print(report(result.label, result.idle, result.rate, result.loaded, args.clients, ceiling))
    print(f"logs in {workdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
