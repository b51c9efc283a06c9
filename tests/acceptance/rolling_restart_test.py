"""Rolling restart: two API and two worker processes on PostgreSQL under load; each process in
turn is stopped with SIGTERM and replaced (the next one only once the replacement is healthy).
Nothing may be lost or rejected.

    .venv/bin/python tests/acceptance/rolling_restart_test.py   # about a minute; needs a local PostgreSQL

CI runs it after the crash test (.ci/run). A script, not a pytest module (``*_test.py`` is not
collected), for the same reason as the crash test: it starts and stops real processes for a minute.

The client does what a load balancer in front of the API processes does: it sends each create to
one API port and, when the connection is refused or closed before an answer (the process behind
it is stopping or not started yet), sends it to the other port. Each create carries an
``Idempotency-Key``, so a create resent after an ambiguous cut cannot be created twice.

Checks, printed with their figures:
- every create was answered 201 (no 4xx, no 5xx, no 503 from a process that was told to stop:
  a stopping process stops accepting first, then answers what it accepted);
- every stopped process exited 0;
- every acknowledged task completed (sandbox tasks that the built-in solvers complete, and small
  proofs of work), none twice, and the ledger audit holds;
- and that the run tested something: creates were sent during every restart window.
Exit status 0 when every check passes.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import secrets
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cluster import Cluster, create_database, drop_database

from cracker.store import audit, open_store

TASKS = [
    # Sandbox tasks the built-in solver completes at once, and proofs of work of some tens of
    # milliseconds in the CPU pool: a worker told to stop has some of these in hand.
    ("turnstile", {"url": "https://a.example", "site_key": "1x00000000000000000000AA"}),
    ("pow-sha256", {"data": "rolling-restart", "difficulty": 4}),
]


@dataclass
class Load:
    ports: list[int]
    key: str
    rate: float
    acked: list[str] = field(default_factory=list)
    refused: Counter[str] = field(default_factory=Counter)
    failovers: int = 0
    #: (sent at, seconds to the 201, failovers it took)
    latencies: list[tuple[float, float]] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self, clients: int) -> None:
        await asyncio.gather(*(self._client(i, clients) for i in range(clients)))

    async def _client(self, index: int, clients: int) -> None:
        interval = clients / self.rate
        # Connections are not reused across a stop: a keep-alive connection closed by the server
        # is a transport error like any other, and the create goes to the other port.
        async with httpx.AsyncClient(timeout=15, headers={"x-solvium-auth": self.key}) as http:
            for n in itertools.count():
                if self.stop.is_set():
                    return
                started = time.monotonic()
                task_type, body = TASKS[n % len(TASKS)]
                await self._create(http, index + n, task_type, body)
                await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))

    async def _create(self, http: httpx.AsyncClient, turn: int, task_type: str, body: dict[str, object]) -> None:
        headers = {"Idempotency-Key": secrets.token_hex(16)}
        started = time.monotonic()
        for attempt in range(40):  # both ports down at once would be a failure of the rollout
            port = self.ports[(turn + attempt) % len(self.ports)]
            try:
                response = await http.post(f"http://127.0.0.1:{port}/v2/tasks/{task_type}", json=body, headers=headers)
            except httpx.TransportError:
                self.failovers += 1
                await asyncio.sleep(0.05 if attempt % 2 == 0 else 0.25)
                continue
            if response.status_code == 201:
                self.acked.append(response.json()["task_id"])
                self.latencies.append((started, time.monotonic() - started))
            else:
                self.refused[f"{response.status_code} {response.json()['error']['code']}"] += 1
            return
        self.refused["no API process answered"] += 1


def _stop(process: subprocess.Popen[bytes]) -> tuple[int, float]:
    """SIGTERM, then wait: (exit status, seconds it took)."""
    started = time.monotonic()
    process.terminate()
    status = process.wait(timeout=90)
    return status, time.monotonic() - started


async def _registered(database_url: str, name: str, timeout: float = 30) -> None:
    """Wait until a worker of this name holds a registration (its lanes are named ``name`` and
    ``name-ocr``)."""
    from cracker.domain.clock import now
    from cracker.store import leases

    store = open_store(database_url)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            workers = await store.read(lambda r: leases.live_workers(r, now()))
            if any(w.name == name for w in workers):
                return
            await asyncio.sleep(0.2)
    finally:
        await store.close()
    raise RuntimeError(f"worker {name} did not register")


async def roll(cluster: Cluster, load: Load, pause: float, log: list[str]) -> list[tuple[float, float]]:
    """Each API process, then each worker: SIGTERM, wait for its exit, start its replacement,
    wait until it serves. Returns the windows (start, end) of the restarts."""
    windows: list[tuple[float, float]] = []
    for port in list(cluster.apis):
        await asyncio.sleep(pause)
        began = time.monotonic()
        status, took = await asyncio.to_thread(_stop, cluster.apis[port])
        cluster.start_api(port)
        await asyncio.to_thread(cluster.wait_healthy, port)
        windows.append((began, time.monotonic()))
        log.append(f"api :{port}: SIGTERM, exit {status} after {took:.1f} s, replacement healthy "
                   f"{time.monotonic() - began:.1f} s after the stop began")
        print(f"  [{time.strftime('%X')}] {log[-1]}", flush=True)
    for index, process in enumerate(list(cluster.workers)):
        assert process is not None
        await asyncio.sleep(pause)
        began = time.monotonic()
        status, took = await asyncio.to_thread(_stop, process)
        cluster.start_worker(index)
        await _registered(cluster.database_url, f"bench-{index}")
        windows.append((began, time.monotonic()))
        log.append(f"worker {index}: SIGTERM, exit {status} after {took:.1f} s, replacement registered "
                   f"{time.monotonic() - began:.1f} s after the stop began")
        print(f"  [{time.strftime('%X')}] {log[-1]}", flush=True)
    return windows


Windows = list[tuple[float, float]]


async def drive(
    cluster: Cluster, ports: list[int], key: str, args: argparse.Namespace
) -> tuple[Load, list[str], Windows]:
    load = Load(ports, key, args.rate)
    runner = asyncio.create_task(load.run(8))
    log: list[str] = []
    windows = await roll(cluster, load, args.pause, log)
    await asyncio.sleep(args.pause)
    load.stop.set()
    await runner
    return load, log, windows


async def settle_and_audit(database_url: str, acked: list[str], timeout: float) -> tuple[list[str], int, bool]:
    store = open_store(database_url)
    try:
        deadline = time.monotonic() + timeout
        while await store.read(audit.live_count) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.5)
        missing, not_done = await store.read(lambda r: audit.not_terminal(r, acked))
        report = await store.read(audit.audit_ledger)
        totals = await store.read(lambda r: r.ledger_totals())
        balances = await store.read(lambda r: r.account_balances())
    finally:
        await store.close()
    checks = {
        "acknowledged tasks missing": len(missing),
        "acknowledged tasks not terminal": len(not_done),
        "tasks not completed": sum(n for s, n in report.tasks_by_status.items() if s != "completed"),
        "tasks with no hold or several": report.bad_holds,
        "tasks captured twice": report.captured_twice,
        "tasks both captured and released": report.captured_and_released,
        "completed tasks not captured exactly once": report.completed_not_captured,
        "terminal tasks not settled exactly once": report.terminal_not_settled,
        "accounts whose balance differs from the ledger sum": sum(
            1 for a in set(totals) | set(balances) if totals.get(a) != balances.get(a)
        ),
    }
    lines = [f"tasks in the database: {report.tasks_by_status}; leased more than once: {report.leased_again}"]
    lines += [f"{'ok  ' if v == 0 else 'FAIL'} {name}: {v}" for name, v in checks.items()]
    return lines, report.leased_again, all(v == 0 for v in checks.values())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=30, help="task creations per second offered")
    parser.add_argument("--pause", type=float, default=3, help="seconds of steady load between restarts")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()

    name, url = create_database("cracker_rolling")
    workdir = Path(tempfile.mkdtemp(prefix="cracker-rolling-"))
    cluster = Cluster(url, workdir, worker_args=["--concurrency", "8"])
    started = time.monotonic()
    print(f"rolling restart: database {name}, logs in {workdir}", flush=True)
    try:
        cluster.migrate()
        _, key = cluster.new_account("1000.00")
        ports = cluster.start_scaled_out()
        asyncio.run(_registered(url, "bench-0"))
        asyncio.run(_registered(url, "bench-1"))
        print(f"2 API processes (:{ports[0]}, :{ports[1]}) and 2 worker processes up; load {args.rate:.0f}/s; "
              f"each process in turn: SIGTERM, replacement, {args.pause:.0f} s apart", flush=True)
        load, log, windows = asyncio.run(drive(cluster, ports, key, args))
        lines, leased_again, audit_ok = asyncio.run(settle_and_audit(url, load.acked, timeout=60))
    finally:
        cluster.stop()
        if not args.keep:
            drop_database(name)
    exits_ok = all(" exit 0 " in line for line in log)
    in_restart = [s for at, s in load.latencies if any(b <= at <= e for b, e in windows)]
    steady = sorted(s for at, s in load.latencies if not any(b <= at <= e for b, e in windows))
    coverage = len(in_restart) >= 10 * len(windows)
    ok = audit_ok and not load.refused and exits_ok and coverage
    print(f"creates acknowledged (201): {len(load.acked)}; refused or unanswered: {dict(load.refused) or 0}; "
          f"failovers to the other API port: {load.failovers}")
    print(f"create latency: max {max(s for _, s in load.latencies):.3f} s overall, "
          f"max {max(in_restart, default=0):.3f} s during restarts ({len(in_restart)} creates in the "
          f"{len(windows)} restart windows), p50 {steady[len(steady) // 2] if steady else 0:.3f} s outside them")
    print("\n".join(lines))
    print(f"{'ok  ' if exits_ok else 'FAIL'} every stopped process exited 0")
    print(f"{'ok  ' if coverage else 'FAIL'} at least 10 creates sent during each restart")
    print(f"     tasks a stopped worker handed back (leased again): {leased_again}")
    print(f"{'PASS' if ok else 'FAIL'} in {time.monotonic() - started:.0f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
