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


async def test_a_flood_leaves_a_slot_for_another_accounts_next_task(api_factory: Any) -> None:
    """With the default cap (above the worker's slots), one account may still fill all but one of
    the in-process worker's slots: another account's task starts at once, not when one of the
    flood's tasks ends (seconds of proof of work each, here; up to its deadline in general)."""
    async with api_factory(worker_concurrency=3) as api:
        async with await api.client_for() as flooder, await api.client_for() as other:
            # About 2**28 hashes each: seconds of work, far longer than the other account's task.
            flood = [(await flooder.post("/v2/tasks/pow-sha256", json={"data": f"flood-{n}", "difficulty": 7}))
                     .json()["task_id"] for n in range(6)]
            began = time.monotonic()
            quick = (await other.post("/v2/tasks/pow-sha256", json={"data": "quick", "difficulty": 2})).json()
            done = await wait_terminal(other, quick["task_id"], timeout=30)
            waited = time.monotonic() - began
            statuses = [(await flooder.get(f"/v2/tasks/{task_id}")).json()["status"] for task_id in flood]
            for task_id in flood:
                await flooder.delete(f"/v2/tasks/{task_id}")
    assert done["status"] == "completed"
    assert statuses.count("running") <= 2, statuses  # 3 slots: the flood holds at most 2
    assert waited < within(3), waited
