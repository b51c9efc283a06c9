"""Fairness benchmark: another account's task latency while one account floods the service.

    .venv/bin/python bench/fairness_bench.py --count-queued 30   # under a minute; SQLite, one process

One `cracker serve` (SQLite, in-process worker, a proof-of-work process per core). Account A
floods it with the most expensive work the server accepts: ALTCHA v2 PBKDF2/SHA-256 challenges
at the per-derivation limit (250,000 iterations, about 0.1 s a step) whose key no counter
derives, so that each runs until its deadline; A replaces each task as soon as it ends.
Account B sends one task at a time and measures create -> completed envelope (long-poll):
`image-to-text` (a freshly drawn captcha) and `pow-sha256` difficulty 4 (65,536 hashes expected).

Phases, in one run:
- idle: B alone;
- flood above the slots: A keeps more tasks live than the in-process worker has slots; the claim
  runs at most CRACKER_MAX_RUNNING_PER_ACCOUNT of them (the server takes the setting from this
  environment), and a built-in lane at most its slots minus one: B's task takes the slot left;
- flood within the slots: A keeps one task fewer than the slots live: B's proof of work gets a
  slot whatever the cap, and its share of the pool.
Each prints p50 / p99 per type and the ratio to idle (goal: within 2x, and no rejection).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import io
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import altcha
import httpx

ROOT = Path(__file__).resolve().parent.parent
#: The in-process worker's proof-of-work slots (CRACKER_WORKER_CONCURRENCY, default 8).
SLOTS = 8
#: PBKDF2-SHA-256 iterations of one key derivation: the most the server accepts.
MAX_STEP_COST = 250_000


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def server(workdir: Path, task_timeout_s: float) -> Any:
    env = {
        **os.environ,
        "CRACKER_DATABASE_URL": f"sqlite:///{workdir / 'bench.db'}",
        "CRACKER_RATE_LIMIT_PER_S": "0",
        "CRACKER_TASK_TIMEOUT_S": str(task_timeout_s),
        "CRACKER_WORKER_CONCURRENCY": str(SLOTS),
    }
    port = free_port()
    with (workdir / "server.log").open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "cracker", "serve", "--port", str(port), "--log-level", "warning"],
            env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                with contextlib.suppress(httpx.TransportError):
                    if httpx.get(f"{base}/v2/health", timeout=1).status_code == 200:
                        break
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("server did not start:\n" + (workdir / "server.log").read_text())
                time.sleep(0.1)

            def account() -> str:
                made = subprocess.run(
                    [sys.executable, "-m", "cracker", "accounts", "create", "--name", "bench", "--balance",
                     "1000", "--json"], env=env, capture_output=True, text=True, check=True,
                )
                key: str = json.loads(made.stdout)["api_key"]
                return key

            yield base, account
        finally:
            process.terminate()
            process.wait(timeout=30)


def flood_body() -> dict[str, Any]:
    challenge = altcha.create_challenge("PBKDF2/SHA-256", MAX_STEP_COST, hmac_secret="bench").to_dict()
    challenge["parameters"]["keyPrefix"] = secrets.token_hex(16)  # no counter derives it
    return {"challenge": challenge}


def image_body() -> dict[str, Any]:
    from cracker.ocr_training.generators import samples

    buffer = io.BytesIO()
    samples(["captcha"], 1, seed=secrets.randbelow(2**31))[0].image.save(buffer, "PNG")
    return {"image_b64": base64.b64encode(buffer.getvalue()).decode()}


def pow_body() -> dict[str, Any]:
    return {"data": secrets.token_hex(8), "difficulty": 4}


async def run_task(http: httpx.AsyncClient, task_type: str, body: dict[str, Any]) -> tuple[float, str]:
    """Seconds from sending the create to receiving the final envelope, and its status / code."""
    began = time.perf_counter()
    created = await http.post(f"/v2/tasks/{task_type}", json=body)
    if created.status_code != 201:
        return time.perf_counter() - began, f"refused {created.status_code}"
    task_id = created.json()["task_id"]
    while True:
        task = (await http.get(f"/v2/tasks/{task_id}", params={"wait": 10})).json()
        if task["status"] in ("completed", "rejected"):
            outcome = "completed" if task["status"] == "completed" else task["error"]["code"]
            seconds = time.perf_counter() - began
            if seconds > 1:
                log(f"    slow {task_type}: created {task['created_at']}, started {task['started_at']}, "
                    f"ended {task['completed_at']}")
            return seconds, outcome


@contextlib.asynccontextmanager
async def flood(http: httpx.AsyncClient, live: int) -> AsyncIterator[None]:
    """Account A keeps ``live`` expensive tasks in the service until the block ends."""
    stop = asyncio.Event()

    async def keep_one() -> None:
        while not stop.is_set():
            created = await http.post("/v2/tasks/altcha", json=flood_body())
            if created.status_code != 201:
                raise RuntimeError(f"the flood's task was refused: {created.text}")
            task_id = created.json()["task_id"]
            while not stop.is_set():
                task = (await http.get(f"/v2/tasks/{task_id}", params={"wait": 1})).json()
                if task["status"] in ("completed", "rejected"):
                    break
            else:
                await http.delete(f"/v2/tasks/{task_id}")

    keepers = [asyncio.create_task(keep_one()) for _ in range(live)]
    try:
        # Let the flood take the worker's slots before measuring.
        await asyncio.sleep(2.0)
        yield
    finally:
        stop.set()
        await asyncio.gather(*keepers, return_exceptions=True)


async def measure(
    http: httpx.AsyncClient, phase: str, task_type: str, body: Callable[[], dict[str, Any]], count: int
) -> tuple[list[float], list[str]]:
    latencies, failures = [], []
    for done in range(1, count + 1):
        seconds, outcome = await run_task(http, task_type, body())
        if outcome == "completed":
            latencies.append(seconds)
        else:
            failures.append(outcome)
        if done == count or done % max(1, count // 5) == 0:
            log(f"  {phase}: {task_type} {done}/{count} (last {seconds * 1000:.0f} ms)")
    return latencies, failures


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def bench(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp, server(Path(tmp), args.task_timeout) as (base, account):
        key_a, key_b = account(), account()
        async with (
            httpx.AsyncClient(base_url=base, headers={"x-solvium-auth": key_a}, timeout=120) as a,
            httpx.AsyncClient(base_url=base, headers={"x-solvium-auth": key_b}, timeout=120) as b,
        ):
            for _ in range(3):  # warm-up: model, pool, connections
                await run_task(b, "image-to-text", image_body())
                await run_task(b, "pow-sha256", pow_body())
            results: dict[tuple[str, str], tuple[list[float], list[str]]] = {}
            kinds: list[tuple[str, Callable[[], dict[str, Any]]]] = [
                ("image-to-text", image_body), ("pow-sha256", pow_body)
            ]
            phases: list[tuple[str, int, dict[str, int]]] = [
                ("idle", 0, {"image-to-text": args.count, "pow-sha256": args.count}),
                (f"flood {SLOTS + 4} live (above the {SLOTS} slots)", SLOTS + 4,
                 {"image-to-text": args.count, "pow-sha256": args.count_queued}),
                (f"flood {SLOTS - 1} live (within the slots)", SLOTS - 1,
                 {"image-to-text": args.count, "pow-sha256": args.count}),
            ]
            for phase, live, counts in phases:
                log(f"{phase}: account A keeps {live} tasks of {MAX_STEP_COST:,}-iteration derivations live")
                context = flood(a, live) if live else contextlib.nullcontext()
                async with context:
                    for task_type, body in kinds:
                        results[(phase, task_type)] = await measure(b, phase, task_type, body, counts[task_type])
            print_table(results, [phase for phase, _, _ in phases], [kind for kind, _ in kinds])


def print_table(
    results: dict[tuple[str, str], tuple[list[float], list[str]]], phases: list[str], kinds: list[str]
) -> None:
    print("| phase | type | tasks | p50 ms | p99 ms | p50 / idle | p99 / idle | not completed |")
    print("|---|---|---|---|---|---|---|---|")
    for phase in phases:
        for kind in kinds:
            latencies, failures = results[(phase, kind)]
            idle = results[(phases[0], kind)][0]
            p50, p99 = pct(latencies, 50), pct(latencies, 99)
            ratio50 = p50 / pct(idle, 50) if idle else float("nan")
            ratio99 = p99 / pct(idle, 99) if idle else float("nan")
            print(
                f"| {phase} | {kind} | {len(latencies) + len(failures)} | {p50 * 1000:.0f} | {p99 * 1000:.0f} "
                f"| {ratio50:.2f}x | {ratio99:.2f}x | {', '.join(failures) or 0} |"
            )
    print(f"(median of all idle latencies: {statistics.median(results[(phases[0], kinds[0])][0]) * 1000:.0f} ms "
          f"{kinds[0]}, {statistics.median(results[(phases[0], kinds[1])][0]) * 1000:.0f} ms {kinds[1]})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=30, help="tasks of each type B sends per phase")
    parser.add_argument("--count-queued", type=int, default=2,
                        help="B's proof-of-work tasks while the flood is above the slots (each waits long)")
    parser.add_argument("--task-timeout", type=float, default=30.0, help="the server's task deadline, seconds")
    args = parser.parse_args()
    asyncio.run(bench(args))


if __name__ == "__main__":
    main()
