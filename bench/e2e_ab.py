"""Two versions of Cracker on PostgreSQL in one run, in paired rounds: is a change faster end to end?

    git archive <rev> src | tar -x -C /tmp/base
    .venv/bin/python bench/e2e_ab.py --compare-src /tmp/base [--rounds 6] [--seconds 8]   # about 5 minutes

`bench/e2e_bench.py` measures one version, and on these VMs the same code's throughput moved by a
third between two of its runs minutes apart: a 5 % change cannot be seen that way. Here both
versions run at once, each its own set-up of e2e_bench (2 API + 2 worker processes, its own
database, `PYTHONPATH` pointing at its ``src``), and each round drives the loaded phase (N clients
in a create -> long-poll loop) against the bare ceiling, this checkout and the compared version in
turn, the order rotating, while the other two sit idle. A slow minute of the VM then hits all
three of a round alike. It prints each round and the medians: completed tasks/s, the ratio to that
round's ceiling, CPU per completed task by role, and per round the ratio this / compared, the
paired figure, which holds far better than either version's own.

Two set-ups open up to 8 x 21 connections at once: the server needs ``max_connections`` of about
200 (PostgreSQL's default is 100; for the run: ``ALTER SYSTEM SET max_connections = 300``, restart;
afterwards ``ALTER SYSTEM RESET max_connections``, restart). It says so and stops if it is lower.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))
from e2e_bench import (
    BODY,
    CEILING_ENVELOPE,
    Cluster,
    CpuByRole,
    create_database,
    drop_database,
    one_request,
    start_bare,
    throughput,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "acceptance"))
from cluster import ADMIN_URL

#: Two set-ups of 4 processes, each process up to 21 connections (README, "Scaling out").
NEEDED_CONNECTIONS = 200

ROLES = ("API processes", "worker processes", "PostgreSQL server processes")


@dataclass
class Setup:
    label: str
    cluster: Cluster
    ports: list[int]
    keys: list[str]
    database: str


def start_setup(label: str, workdir: Path, src: Path | None, accounts: int) -> Setup:
    name, url = create_database("cracker_ab")
    extra = {"PYTHONPATH": str(src)} if src is not None else {}
    logs = workdir / label
    logs.mkdir()
    cluster = Cluster(url, logs, env_extra=extra, worker_args=["--concurrency", "64"])
    cluster.migrate()
    ports = cluster.start_scaled_out()
    keys = [cluster.new_account("1000000.00")[1] for _ in range(accounts)]
    return Setup(label, cluster, ports, keys, name)


async def max_connections() -> int:
    import asyncpg

    from cracker.store.notify import asyncpg_dsn

    conn = await asyncpg.connect(asyncpg_dsn(ADMIN_URL))
    try:
        return int(await conn.fetchval("SHOW max_connections"))
    finally:
        await conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--compare-src", type=Path, required=True, help="DIR/src is the other version's package")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=8, help="measured seconds per phase (after 4 s of warm-up)")
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--accounts", type=int, default=8)
    args = parser.parse_args()
    allowed = asyncio.run(max_connections())
    if allowed < NEEDED_CONNECTIONS:
        print(f"max_connections is {allowed}; two set-ups need about {NEEDED_CONNECTIONS} (see the docstring)")
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="cracker-ab-"))
    bare, bare_port = start_bare(workdir, CEILING_ENVELOPE)
    setups: list[Setup] = []
    try:
        setups.append(start_setup("this", workdir, None, args.accounts))
        setups.append(start_setup("compared", workdir, args.compare_src.resolve() / "src", args.accounts))
        time.sleep(1.5)  # the API processes see the workers at their next registry refresh
        print(f"{args.rounds} rounds of {args.seconds:g} s per phase, {args.clients} clients; body {BODY}", flush=True)
        rates: dict[str, list[float]] = {"ceiling": [], "this": [], "compared": []}
        cpu: dict[str, dict[str, list[float]]] = {s.label: {role: [] for role in ROLES} for s in setups}
        paired: list[float] = []
        for round_no in range(args.rounds):
            order = ["ceiling", "this", "compared"]
            order = order[round_no % 3:] + order[: round_no % 3]
            line = []
            for label in order:
                if label == "ceiling":
                    rate, _ = uvloop.run(throughput([bare_port], ["none"], args.clients, args.seconds, one_request))
                else:
                    setup = next(s for s in setups if s.label == label)
                    meter = CpuByRole(setup.cluster)
                    rate, _ = uvloop.run(throughput(setup.ports, setup.keys, args.clients, args.seconds, cpu=meter))
                    for role in ROLES:
                        cpu[label][role].append(meter.spent.get(role, 0.0) / (rate * args.seconds) * 1e6)
                rates[label].append(rate)
                line.append(f"{label} {rate:,.0f}/s")
            ceiling = rates["ceiling"][-1]
            paired.append(rates["this"][-1] / rates["compared"][-1])
            print(f"  round {round_no + 1}: {', '.join(line)}; ratios this {rates['this'][-1] / ceiling:.3f}, "
                  f"compared {rates['compared'][-1] / ceiling:.3f}; this / compared {paired[-1]:.3f}", flush=True)
        ceiling = statistics.median(rates["ceiling"])
        print(f"\nmedians: ceiling {ceiling:,.0f} req/s (range {min(rates['ceiling']):,.0f} to "
              f"{max(rates['ceiling']):,.0f})")
        for label in ("this", "compared"):
            per_role = ", ".join(f"{role} {statistics.median(cpu[label][role]):,.0f} us" for role in ROLES)
            ratios = [r / c for r, c in zip(rates[label], rates["ceiling"], strict=True)]
            print(f"  {label}: {statistics.median(rates[label]):,.0f} tasks/s, ratio to its round's ceiling "
                  f"{statistics.median(ratios):.3f}; CPU per completed task: {per_role}")
        print(f"  this / compared, per round: {', '.join(f'{p:.3f}' for p in paired)}; "
              f"median {statistics.median(paired):.3f}")
    finally:
        for setup in setups:
            setup.cluster.stop()
            drop_database(setup.database)
        bare.terminate()
        bare.wait(timeout=15)
    print(f"logs in {workdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
