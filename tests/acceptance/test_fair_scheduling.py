"""Issue 17 on the real server: one account's flood of slow proof of work does not delay another's task."""

from __future__ import annotations

import asyncio
import secrets
import time
from pathlib import Path

import altcha
import httpx

from tests.conftest import started_server
from tests.timing import within

#: PBKDF2-SHA-256 iterations of one key derivation: the most the server accepts (bench/fairness_bench.py).
MAX_STEP_COST = 250_000


def _endless_altcha() -> dict[str, object]:
    challenge = altcha.create_challenge("PBKDF2/SHA-256", MAX_STEP_COST, hmac_secret="t").to_dict()
    challenge["parameters"]["keyPrefix"] = secrets.token_hex(16)  # no counter derives it: runs to its deadline
    return {"challenge": challenge}


async def test_another_accounts_task_completes_during_a_flood(tmp_path: Path) -> None:
    # 4 slots, cap 2: before the fair claim, B's task queued behind all 30 of A's, each running to
    # its 60 s deadline (minutes); now it takes the slot the cap leaves free, in well under 20 s.
    with started_server(
        tmp_path, CRACKER_WORKER_CONCURRENCY="4", CRACKER_MAX_RUNNING_PER_ACCOUNT="2", CRACKER_TASK_TIMEOUT_S="60",
    ) as server:
        _, flood_key = server.new_account("100.00")
        _, other_key = server.new_account("1.00")
        async with (
            httpx.AsyncClient(base_url=server.base_url, headers={"x-solvium-auth": flood_key}, timeout=30) as flood,
            httpx.AsyncClient(base_url=server.base_url, headers={"x-solvium-auth": other_key}, timeout=30) as other,
        ):
            for _ in range(30):
                assert (await flood.post("/v2/tasks/altcha", json=_endless_altcha())).status_code == 201
            await asyncio.sleep(1)  # the flood holds its slots
            began = time.monotonic()
            created = await other.post("/v2/tasks/pow-sha256", json={"data": "fair", "difficulty": 2})
            assert created.status_code == 201
            task_id = created.json()["task_id"]
            task = (await other.get(f"/v2/tasks/{task_id}", params={"wait": min(within(20), 60)})).json()
            waited = time.monotonic() - began
    assert task["status"] == "completed", task
    assert waited < within(20)
