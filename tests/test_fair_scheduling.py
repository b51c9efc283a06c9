"""Issue 17, fair scheduling end to end: one account's flood does not delay another's task, and a
capped account's tasks still flow."""

from __future__ import annotations

import asyncio
import secrets
import time
from pathlib import Path
from typing import Any

import altcha
import httpx

from .conftest import TURNSTILE_PASS, started_server, wait_terminal

#: PBKDF2-SHA-256 iterations of one key derivation: the most the server accepts (bench/fairness_bench.py).
MAX_STEP_COST = 250_000
TURNSTILE = {"url": "https://example.com", "site_key": TURNSTILE_PASS}


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
            task = (await other.get(f"/v2/tasks/{task_id}", params={"wait": 20})).json()
            waited = time.monotonic() - began
    assert task["status"] == "completed", task
    assert waited < 20


async def test_a_capped_accounts_next_task_starts_when_its_running_one_ends(api_factory: Any) -> None:
    # Cap 1 on a worker of 4 slots: each claim leaves slots free and finds the rest capped. The
    # worker must claim again when its task ends, not a poll later (1 s a task: 8 s for these 8).
    async with api_factory(worker_concurrency=4, max_running_per_account=1) as api, await api.client_for() as client:
        began = time.monotonic()
        created = [await client.post("/v2/tasks/turnstile", json=TURNSTILE) for _ in range(8)]
        ended = [await wait_terminal(client, c.json()["task_id"]) for c in created]
        elapsed = time.monotonic() - began
    assert [t["status"] for t in ended] == ["completed"] * 8
    assert elapsed < 4
