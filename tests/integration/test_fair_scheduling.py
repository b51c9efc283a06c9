"""Issue 17 in process: a capped account's tasks still flow through a worker with slots to spare."""

from __future__ import annotations

import time
from typing import Any

from tests.conftest import TURNSTILE_PASS, wait_terminal
from tests.timing import within

TURNSTILE = {"url": "https://example.com", "site_key": TURNSTILE_PASS}


async def test_a_capped_accounts_next_task_starts_when_its_running_one_ends(api_factory: Any) -> None:
    # Cap 1 on a worker of 4 slots: each claim leaves slots free and finds the rest capped. The
    # worker must claim again when its task ends, not a poll later (1 s a task: 8 s for these 8).
    async with api_factory(worker_concurrency=4, max_running_per_account=1) as api, await api.client_for() as client:
        began = time.monotonic()
        created = [await client.post("/v2/tasks/turnstile", json=TURNSTILE) for _ in range(8)]
        ended = [await wait_terminal(client, c.json()["task_id"]) for c in created]
        elapsed = time.monotonic() - began
    assert [t["status"] for t in ended] == ["completed"] * 8
    assert elapsed < within(4)
