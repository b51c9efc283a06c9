"""Overload: one account floods at 1x and 10x its rate limit while a second account keeps its pace.

    .venv/bin/python bench/overload_bench.py [--rate 20] [--seconds 15] [--only sqlite|postgresql]

Set-ups: SQLite, one `cracker serve`; PostgreSQL, two `cracker serve` processes with
CRACKER_API_PROCESSES=2 (each enforces half the limit), the flood spread over both. Both run as
deployed by default: log level info, one JSON access line per request (to a file).
Per phase: the flooding account's accepted requests per second (after its burst) beside the
setting; the second account's latency (a balance read, a create, a poll in turn, at half its own
limit) beside its idle latency, measured in the same run; each API process's peak RSS. The load
generator runs on the same machine (asyncio, bare HTTP/1.1).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

# The load helpers live with the acceptance test that CI runs (tests/acceptance/overload.py).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "acceptance"))
from cluster import create_database, drop_database, free_port
from overload import FloodResult, flood, peak_rss_mib, percentile, steady_client

STEADY_SHARE = 0.5  #: the second account's pace, as a share of its limit


def start_api(env: dict[str, str], workdir: Path, name: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    with (workdir / f"{name}.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "cracker", "serve", "--port", str(port)], env=env, stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v2/health", timeout=1).status_code == 200:
                return process, port
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit(f"{name} did not start: {(workdir / f'{name}.log').read_text()[-2000:]}")


def new_key(env: dict[str, str]) -> str:
    created = subprocess.run(
        [sys.executable, "-m", "cracker", "accounts", "create", "--name", "bench", "--balance", "1000", "--json"],
        env=env, capture_output=True, text=True, check=True,
    )
    return str(json.loads(created.stdout)["api_key"])


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def run_setup(label: str, env: dict[str, str], workdir: Path, processes: int, rate: float, seconds: float) -> None:
    servers = [start_api(env, workdir, f"{label}-api-{index}") for index in range(processes)]
    ports = [port for _, port in servers]
    try:
        flooder, steady = new_key(env), new_key(env)
        steady_rate = STEADY_SHARE * rate
        idle = asyncio.run(steady_client(ports, steady, steady_rate, seconds))
        print(f"\n{label}: {processes} API process(es), limit {rate:g}/s per account, burst {rate:g}; "
              f"second account at {steady_rate:g}/s")
        print("| flood | accepted/s (setting) | error | 429s without Retry-After or envelope | "
              "2nd account p50 / p99 ms | p99 / idle p99 | peak RSS MiB per process |")
        print("|---|---|---|---|---|---|---|")
        print(f"| none (idle) | - | - | - | {ms(percentile(idle, 0.5))} / {ms(percentile(idle, 0.99))} | 1.00 | "
              f"{' / '.join(f'{peak_rss_mib(p.pid):.0f}' for p, _ in servers)} |")
        for multiple in (1, 10):
            time.sleep(2)  # refill the flooder's bucket: each phase starts from a full burst

            async def phase(flood_rate: float) -> tuple[FloodResult, list[float]]:
                return await asyncio.gather(
                    flood(ports, flooder, flood_rate, seconds), steady_client(ports, steady, steady_rate, seconds)
                )

            flooded, loaded = asyncio.run(phase(multiple * rate))
            accepted = flooded.accepted_rate(flooded.drained_at() + 0.1, seconds) if multiple > 1 else (
                flooded.accepted_rate(0, seconds))
            p50, p99 = percentile(loaded, 0.5), percentile(loaded, 0.99)
            print(f"| {multiple}x ({multiple * rate:g}/s) | {accepted:.2f} ({rate:g}) | "
                  f"{(accepted - rate) / rate * 100:+.1f} % | {len(flooded.bad_refusals)} of "
                  f"{flooded.statuses().get(429, 0)} | {ms(p50)} / {ms(p99)} | "
                  f"{p99 / percentile(idle, 0.99):.2f} | "
                  f"{' / '.join(f'{peak_rss_mib(p.pid):.0f}' for p, _ in servers)} |", flush=True)
    finally:
        for process, _ in servers:
            process.terminate()
            process.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=20.0, help="the per-account limit under test (req/s)")
    parser.add_argument("--seconds", type=float, default=15.0, help="length of each phase")
    parser.add_argument("--only", choices=["sqlite", "postgresql"])
    args = parser.parse_args()
    limits = {"CRACKER_RATE_LIMIT_PER_S": str(args.rate), "CRACKER_RATE_LIMIT_BURST": str(int(args.rate)),
              "CRACKER_CPU_WORKERS": "1"}
    with tempfile.TemporaryDirectory(prefix="cracker-overload-") as tmp:
        workdir = Path(tmp)
        if args.only in (None, "sqlite"):
            env = {**os.environ, **limits, "CRACKER_DATABASE_URL": f"sqlite:///{workdir / 'bench.db'}"}
            subprocess.run([sys.executable, "-m", "cracker", "migrate"], env=env, check=True, capture_output=True)
            run_setup("SQLite", env, workdir, 1, args.rate, args.seconds)
        if args.only in (None, "postgresql"):
            name, url = create_database("cracker_overload")
            try:
                env = {**os.environ, **limits, "CRACKER_DATABASE_URL": url, "CRACKER_API_PROCESSES": "2"}
                subprocess.run([sys.executable, "-m", "cracker", "migrate"], env=env, check=True, capture_output=True)
                run_setup("PostgreSQL", env, workdir, 2, args.rate, args.seconds)
            finally:
                drop_database(name)


if __name__ == "__main__":
    main()
