"""Crash test: two API processes and two worker processes on PostgreSQL under steady load; kill -9
a worker and an API process several times; then prove nothing was lost or paid twice.

    .venv/bin/python tests/acceptance/crash_test.py   # about 2 minutes; needs a local PostgreSQL

CI runs it after the test suite (.ci/run). A script, not a pytest module: pyproject's ``python_files``
leaves ``*_test.py`` uncollected.

Checks, printed with their counts:
- every task whose creation was acknowledged (201) exists and is terminal;
- none was solved twice and no hold was captured twice (the ledger holds one hold and exactly one
  capture or release per terminal task, never both, never two);
- the sum of the ledger equals the sum of the accounts' balances, per account;
- and that the run tested something: at least a third of the offered load was acknowledged, at least
  half of the acknowledged tasks completed, and at least one task was leased again after its worker
  was killed (without these, a run with no traffic or no kill in flight would pass every check).
Exit status 0 when every check passes.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cluster import Cluster, create_database, drop_database

from cracker.store import audit, open_store

TASKS = [
    # (weight, type, body): zero-work sandbox tasks that complete, ones that the solver rejects
    # (hold released), and real proof of work in the CPU pool.
    (70, "turnstile", {"url": "https://a.example", "site_key": "1x00000000000000000000AA"}),
    (15, "turnstile", {"url": "https://a.example", "site_key": "2x00000000000000000000AB"}),
    (15, "pow-sha256", {"data": "crash-test", "difficulty": 3}),
]


class Load:
    def __init__(self, ports: list[int], keys: list[str], rate: float) -> None:
        self.ports = ports
        self.keys = keys
        self.rate = rate
        self.acked: list[str] = []
        self.errors: Counter[str] = Counter()
        self.stop = asyncio.Event()
        #: How long the load ran, for the share of the offered load that was acknowledged.
        self.seconds = 0.0

    async def run(self, clients: int) -> None:
        started = time.monotonic()
        await asyncio.gather(*(self._client(i) for i in range(clients)))
        self.seconds = time.monotonic() - started

    async def _client(self, index: int) -> None:
        rng = random.Random(index)
        weights = [w for w, _, _ in TASKS]
        interval = 1 / (self.rate / 8)  # each client's share of the rate (8 clients)
        async with httpx.AsyncClient(timeout=10) as http:
            for n in itertools.count():
                if self.stop.is_set():
                    return
                started = time.monotonic()
                _, task_type, body = rng.choices(TASKS, weights)[0]
                port = self.ports[(index + n) % len(self.ports)]
                key = self.keys[(index + n) % len(self.keys)]
                try:
                    response = await http.post(
                        f"http://127.0.0.1:{port}/v2/tasks/{task_type}", json=body, headers={"x-solvium-auth": key}
                    )
                    if response.status_code == 201:
                        self.acked.append(response.json()["task_id"])
                    else:
                        self.errors[f"http {response.status_code} {response.json()['error']['code']}"] += 1
                except httpx.TransportError as exc:
                    self.errors[type(exc).__name__] += 1  # the API died under the request: not acknowledged
                await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))


#: Proof of work of about a second: sent just before a worker is killed, so that the kill finds
#: leases in hand and the test sees those tasks leased again (zero-work tasks end in milliseconds).
SLOW_TASK = {"data": "crash-test-slow", "difficulty": 6}


async def busy_worker(load: Load, database_url: str, default: int) -> int:
    """Send slow tasks, wait until a worker holds some, and return its index (else ``default``)."""
    async with httpx.AsyncClient(timeout=10) as http:
        for n in range(4):
            try:
                response = await http.post(
                    f"http://127.0.0.1:{load.ports[n % len(load.ports)]}/v2/tasks/pow-sha256", json=SLOW_TASK,
                    headers={"x-solvium-auth": load.keys[n % len(load.keys)]},
                )
            except httpx.HTTPError:
                continue
            if response.status_code == 201:
                load.acked.append(response.json()["task_id"])
    store = open_store(database_url)
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            # Lanes register as "bench-<index>" (proof of work) and "bench-<index>-ocr".
            for name in await store.read(audit.lease_holders):
                parts = name.split("-")
                if len(parts) == 2 and parts[0] == "bench" and parts[1].isdigit():
                    return int(parts[1])
            await asyncio.sleep(0.1)
    finally:
        await store.close()
    return default


async def chaos(
    cluster: Cluster, load: Load, kills: int, every_s: float, log: list[str]
) -> None:
    """Alternately kill -9 a worker (one holding leases) and an API process, and start it again a
    second later."""
    ports = load.ports
    for round_ in range(kills * 2):
        await asyncio.sleep(every_s)
        if round_ % 2 == 0:
            index = await busy_worker(load, cluster.database_url, (round_ // 2) % len(cluster.workers))
            cluster.kill_worker(index)
            log.append(f"kill -9 worker {index}")
            await asyncio.sleep(1)
            cluster.start_worker(index)
        else:
            port = ports[(round_ // 2) % len(ports)]
            cluster.kill_api(port)
            log.append(f"kill -9 api :{port}")
            await asyncio.sleep(1)
            cluster.start_api(port)
            await asyncio.to_thread(cluster.wait_healthy, port)
        print(f"  [{time.strftime('%X')}] {log[-1]}, restarted", flush=True)


async def progress(load: Load, database_url: str) -> None:
    store = open_store(database_url)
    try:
        while not load.stop.is_set():
            await asyncio.sleep(5)
            live = await store.read(audit.live_count)
            print(f"  [{time.strftime('%X')}] acknowledged {len(load.acked)}, live {live}, "
                  f"refused {sum(load.errors.values())}", flush=True)
    finally:
        await store.close()


async def drive(cluster: Cluster, ports: list[int], keys: list[str], args: argparse.Namespace) -> Load:
    load = Load(ports, keys, args.rate)
    kills: list[str] = []
    runner = asyncio.create_task(load.run(8))
    reporter = asyncio.create_task(progress(load, cluster.database_url))
    await chaos(cluster, load, args.kills, args.every, kills)
    await asyncio.sleep(args.every)
    load.stop.set()
    await runner
    await reporter
    return load


async def settle_and_audit(
    database_url: str, acked: list[str], timeout: float, min_acked: int
) -> tuple[bool, list[str]]:
    store = open_store(database_url)
    lines: list[str] = []
    try:
        deadline = time.monotonic() + timeout
        while (live := await store.read(audit.live_count)) and time.monotonic() < deadline:
            print(f"  waiting for {live} live task(s) to end (leases of killed workers expire)", flush=True)
            await asyncio.sleep(2)
        missing, not_done = await store.read(lambda r: audit.not_terminal(r, acked))
        report = await store.read(audit.audit_ledger)
        totals = await store.read(lambda r: r.ledger_totals())
        balances = await store.read(lambda r: r.account_balances())
    finally:
        await store.close()
    ledger_ok = totals == balances
    completed = report.tasks_by_status.get("completed", 0)
    # Each is 0 when met: the load and the kills exercised what the other checks judge.
    coverage = {
        f"acknowledged creations short of {min_acked}": max(0, min_acked - len(acked)),
        f"completed tasks short of half the acknowledged ({len(acked) // 2})": max(0, len(acked) // 2 - completed),
        "tasks leased again after a kill short of 1": max(0, 1 - report.leased_again),
    }
    checks = {
        **coverage,
        "acknowledged tasks missing": len(missing),
        "acknowledged tasks not terminal": len(not_done),
        "tasks with no hold or several": report.bad_holds,
        "tasks captured twice": report.captured_twice,
        "tasks released twice": report.released_twice,
        "tasks both captured and released (solved twice)": report.captured_and_released,
        "completed tasks not captured exactly once": report.completed_not_captured,
        "terminal tasks not settled exactly once": report.terminal_not_settled,
        "live tasks already settled": report.live_but_settled,
        "accounts whose balance differs from the ledger sum": sum(
            1 for a in set(totals) | set(balances) if totals.get(a) != balances.get(a)
        ),
    }
    sum_ledger = tuple(map(sum, zip(*totals.values(), strict=False))) if totals else (0, 0)
    sum_balances = tuple(map(sum, zip(*balances.values(), strict=False))) if balances else (0, 0)
    lines.append(f"tasks in the database: {sum(report.tasks_by_status.values())} {report.tasks_by_status}")
    lines.append(f"acknowledged creations: {len(acked)}")
    lines.append(f"tasks leased more than once (their worker was killed): {report.leased_again}")
    lines.append(f"ledger sum (available, held): {sum_ledger}; balances sum: {sum_balances}")
    ok = ledger_ok and all(v == 0 for v in checks.values())
    lines.extend(f"{'ok  ' if v == 0 else 'FAIL'} {name}: {v}" for name, v in checks.items())
    lines.append(f"{'ok' if ok else 'FAIL'}   (all {len(checks)} checks)")
    return ok, lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=150, help="task creations per second offered")
    parser.add_argument("--kills", type=int, default=4, help="kill -9 rounds of each kind")
    parser.add_argument("--every", type=float, default=5, help="seconds between kills")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()

    name, url = create_database("cracker_crash")
    workdir = Path(tempfile.mkdtemp(prefix="cracker-crash-"))
    # Short leases: a killed worker's tasks are back in the queue 2 s after its last heartbeat.
    cluster = Cluster(url, workdir, env_extra={"CRACKER_LEASE_S": "2", "CRACKER_REAPER_INTERVAL_S": "0.25"},
                      worker_args=["--concurrency", "16"])
    started = time.monotonic()
    print(f"crash test: database {name}, logs in {workdir}", flush=True)
    try:
        cluster.migrate()
        keys = [cluster.new_account("1000.00")[1] for _ in range(4)]
        ports = cluster.start_scaled_out()
        print(f"2 API processes (:{ports[0]}, :{ports[1]}) and 2 worker processes up; load {args.rate:.0f}/s, "
              f"{args.kills} kill -9 of each kind every {args.every:.0f} s", flush=True)
        load = asyncio.run(drive(cluster, ports, keys, args))
        print(f"load stopped: {len(load.acked)} acknowledged, refused or cut: {dict(load.errors)}", flush=True)
        offered = args.rate * load.seconds
        ok, lines = asyncio.run(settle_and_audit(url, load.acked, timeout=60, min_acked=int(offered / 3)))
        lines.insert(0, f"offered about {offered:.0f} creations in {load.seconds:.0f} s")
    finally:
        cluster.stop()
        if not args.keep:
            drop_database(name)
    print("\n".join(lines))
    print(f"{'PASS' if ok else 'FAIL'} in {time.monotonic() - started:.0f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
