"""kill -9 of a SQLite server in the middle of its creates: nothing acknowledged is lost, and no
money moves without its task.

The per-task writes run on the event loop in groups (store.sqlite): a 201 is sent only after its
group committed, and a group is all or nothing. So after a kill at any moment, every task answered
201 is in the database, the ledger balances, and a server started again on the file serves them.
(The PostgreSQL cluster's kill test is tests/acceptance/crash_test.py, which CI runs on its own.)
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from pathlib import Path

import httpx

from tests.acceptance.ledger_check import books_at
from tests.conftest import started_server
from tests.timing import within

COMPLETES = {"url": "https://a.example", "site_key": "1x00000000000000000000AA"}
CLIENTS = 16


async def _create_until_refused(base_url: str, key: str, acknowledged: list[str]) -> None:
    """Each client creates tasks back to back until the server is gone."""
    async with httpx.AsyncClient(base_url=base_url, headers={"x-solvium-auth": key}, timeout=5) as client:
        while True:
            try:
                answer = await client.post("/v2/tasks/turnstile", json=COMPLETES)
            except httpx.TransportError:
                return
            assert answer.status_code == 201, answer.text
            acknowledged.append(answer.json()["task_id"])


def _drive(base_url: str, key: str, acknowledged: list[str]) -> None:
    async def clients() -> None:
        await asyncio.gather(*(_create_until_refused(base_url, key, acknowledged) for _ in range(CLIENTS)))

    asyncio.run(clients())


def test_a_killed_sqlite_server_loses_no_acknowledged_task(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'live.db'}"
    acknowledged: list[str] = []
    with started_server(tmp_path, CRACKER_RATE_LIMIT_PER_S="0") as server:
        key = server.new_account("1000.00")[1]
        driver = threading.Thread(target=_drive, args=(server.base_url, key, acknowledged))
        driver.start()
        deadline = time.monotonic() + within(30)
        while len(acknowledged) < 300:  # in full flow: creates, claims and completions in flight
            assert driver.is_alive() and time.monotonic() < deadline, "the creates did not flow"
            time.sleep(0.01)
        server.process.send_signal(signal.SIGKILL)
        server.process.wait(timeout=10)
        driver.join(timeout=within(30))
        assert not driver.is_alive()
    killed_at = len(acknowledged)

    report, balanced = asyncio.run(books_at(database))
    assert balanced, report

    # Started again on the same file, it serves every acknowledged task, and the ones the kill
    # left pending complete.
    with started_server(tmp_path, CRACKER_DATABASE_URL=database) as server:
        with httpx.Client(base_url=server.base_url, headers={"x-solvium-auth": key}, timeout=10) as client:
            statuses = []
            for task_id in acknowledged:
                answer = client.get(f"/v2/tasks/{task_id}")
                assert answer.status_code == 200, (task_id, answer.text)
                statuses.append(answer.json()["status"])
            assert statuses.count("completed") > 0
            pending = [task_id for task_id, status in zip(acknowledged, statuses, strict=True) if status == "pending"]
            for task_id in pending[:20]:
                ended = client.get(f"/v2/tasks/{task_id}?wait=30", timeout=40).json()
                assert ended["status"] == "completed", ended
    report, balanced = asyncio.run(books_at(database))
    assert balanced, report
    assert len(acknowledged) == killed_at
