"""Cross-process wake-ups over LISTEN/NOTIFY (PostgreSQL only): two notifiers stand for two processes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from cracker.service.pg_notifier import PostgresNotifier
from tests.timing import within


@pytest.fixture
async def two_processes(postgres_url: str) -> AsyncIterator[tuple[PostgresNotifier, PostgresNotifier]]:
    a, b = PostgresNotifier(postgres_url), PostgresNotifier(postgres_url)
    await a.start()
    await b.start()
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()


async def test_a_finish_in_one_process_wakes_a_waiter_in_another(
    two_processes: tuple[PostgresNotifier, PostgresNotifier],
) -> None:
    api, worker = two_processes
    started = time.monotonic()
    waiter = asyncio.create_task(api.wait_for_finish("task-1", 5))
    await asyncio.sleep(0.05)
    for task_id in ("task-0", "task-1", "task-2"):  # coalesced into one NOTIFY
        worker.task_finished(task_id)
    await asyncio.wait_for(waiter, 2)
    assert time.monotonic() - started < within(1)


async def test_new_work_in_one_process_wakes_workers_in_another(
    two_processes: tuple[PostgresNotifier, PostgresNotifier],
) -> None:
    api, worker = two_processes
    started = time.monotonic()
    waiter = asyncio.create_task(worker.wait_for_work(5))
    await asyncio.sleep(0.05)
    api.task_created()
    await asyncio.wait_for(waiter, 2)
    assert time.monotonic() - started < within(1)


async def test_many_finished_ids_are_split_under_the_payload_limit(
    two_processes: tuple[PostgresNotifier, PostgresNotifier],
) -> None:
    api, worker = two_processes
    ids = [f"01a2224a-e959-714c-b639-{i:012d}" for i in range(600)]  # ~22 kB of ids
    waiters = [asyncio.create_task(api.wait_for_finish(i, 5)) for i in (ids[0], ids[299], ids[-1])]
    await asyncio.sleep(0.05)
    for task_id in ids:
        worker.task_finished(task_id)
    await asyncio.wait_for(asyncio.gather(*waiters), 2)


async def test_waiters_are_woken_after_the_connection_is_lost(
    two_processes: tuple[PostgresNotifier, PostgresNotifier],
) -> None:
    """Notifications sent while disconnected are lost: on reconnecting, every waiter re-checks."""
    api, _ = two_processes
    waiter = asyncio.create_task(api.wait_for_finish("task-x", 10))
    await asyncio.sleep(0.05)
    api._channel._conn.terminate()  # the server went away under it
    await asyncio.wait_for(waiter, 5)
