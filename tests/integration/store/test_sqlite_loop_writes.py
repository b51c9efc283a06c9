"""The SQLite store's per-task writes, run on the event loop in groups (store.sqlite).

They must never make the loop wait for the file lock another process holds, a unit that fails
must leave the others of its group committed, and the loop's commits must still be checkpointed
(by the writer thread) so that the WAL does not grow without end.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cracker.store import IdempotencyKeyTaken, open_store
from cracker.store.migrate import migrate
from cracker.store.sqlite import _CHECKPOINT_EVERY, _GROUP, SqliteStore
from tests.timing import within

from .contract.helpers import assert_books_balance, balance, claim, complete, new_account, new_task

PRICE = 9


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    path = tmp_path / "loop.db"
    migrate(f"sqlite:///{path}")
    return path


@pytest.fixture
async def store(db_path: Path) -> AsyncIterator[SqliteStore]:
    opened = open_store(f"sqlite:///{db_path}")
    assert isinstance(opened, SqliteStore)
    try:
        yield opened
    finally:
        await opened.close()


async def test_a_create_waits_for_another_process_lock_without_stalling_the_loop(
    store: SqliteStore, db_path: Path
) -> None:
    account = await new_account(store)
    other = sqlite3.connect(db_path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        create = asyncio.create_task(store.create_task(new_task(account)))
        # Meanwhile the loop goes on: timers fire on time and reads answer.
        ticks = 0
        started = time.monotonic()
        while time.monotonic() - started < 0.3:
            await asyncio.sleep(0.01)
            ticks += 1
            assert await store.get_task_view("no-such-task") is None
        assert ticks >= 10
        assert not create.done()  # it waits for the lock (the writer thread's busy timeout)
        other.execute("COMMIT")
        task = await asyncio.wait_for(create, within(5))
    finally:
        other.close()
    assert task is not None
    assert await balance(store, account) == (10_000 - PRICE, PRICE)
    # Once the lock is free again the per-task writes go on as before.
    claims = await claim(store, "w", 1)
    assert [c.task.id for c in claims] == [task.id]
    assert [t.id for t in await complete(store, claims)] == [task.id]
    await assert_books_balance(store)


async def test_a_unit_that_fails_in_a_group_leaves_the_others_committed(store: SqliteStore) -> None:
    account = await new_account(store)
    taken = new_task(account, key="same-key")
    assert await store.create_task(taken) is not None
    # In one loop turn, so one group: a create whose Idempotency-Key is taken, between two others.
    results = await asyncio.gather(
        store.create_task(new_task(account)),
        store.create_task(new_task(account, key="same-key")),
        store.create_task(new_task(account, key="other-key")),
        return_exceptions=True,
    )
    assert isinstance(results[1], IdempotencyKeyTaken)
    created = [r for r in (results[0], results[2]) if not isinstance(r, BaseException)]
    assert len(created) == 2 and all(task is not None for task in created)
    assert await balance(store, account) == (10_000 - 3 * PRICE, 3 * PRICE)
    views = [await store.get_task_view(task.id) for task in created if task is not None]
    assert all(view is not None and view.status.value == "pending" for view in views)
    await assert_books_balance(store)


async def test_a_group_settles_each_create_against_the_balance_left_by_those_before(store: SqliteStore) -> None:
    account = await new_account(store, balance=3 * PRICE)
    results = await asyncio.gather(*(store.create_task(new_task(account)) for _ in range(5)))
    assert [task is not None for task in results] == [True, True, True, False, False]
    assert await balance(store, account) == (0, 3 * PRICE)
    await assert_books_balance(store)


def _wal_bytes(db_path: Path) -> int:
    wal = db_path.with_name(db_path.name + "-wal")
    return wal.stat().st_size if wal.exists() else 0


async def _create_one_by_one(store: SqliteStore, account: str, count: int) -> None:
    for _ in range(count):
        assert await store.create_task(new_task(account)) is not None


async def test_the_loops_commits_are_checkpointed(store: SqliteStore, db_path: Path) -> None:
    account = await new_account(store, balance=10_000_000)
    # The WAL file keeps its high-water mark: with checkpoints it is reused from its start, and
    # stays about as large as the frames between two of them; without, it grows with every commit.
    await _create_one_by_one(store, account, 200)
    await asyncio.sleep(0.2)  # the writer thread's checkpoint
    early = _wal_bytes(db_path)
    await _create_one_by_one(store, account, 1_000)
    await asyncio.sleep(0.2)
    late = _wal_bytes(db_path)
    assert early > 0
    # Five times the commits; without checkpoints the file would be about five times larger.
    assert late < 2 * early, (early, late)


async def test_writes_queued_when_a_checkpoint_falls_due_are_written_after_it(store: SqliteStore) -> None:
    account = await new_account(store, balance=10_000_000)
    # One create short of the commits between two checkpoints, then a crowd: its first group's
    # commit makes a checkpoint due, and the rest must still be written once it is done.
    await _create_one_by_one(store, account, _CHECKPOINT_EVERY - 1)
    crowd = await asyncio.wait_for(
        asyncio.gather(*(store.create_task(new_task(account)) for _ in range(3 * _GROUP))), within(10)
    )
    assert all(task is not None for task in crowd)
    await assert_books_balance(store)


async def test_a_close_writes_what_is_still_queued_first_and_leaves_nothing_open(db_path: Path) -> None:
    store = open_store(f"sqlite:///{db_path}")
    account = await new_account(store)
    pending = [asyncio.create_task(store.create_task(new_task(account))) for _ in range(3)]
    await asyncio.sleep(0)  # queued on the loop, not yet run
    await store.close()
    created = [await task for task in pending]
    assert all(task is not None for task in created)
    # And nothing is left open: the last connection to close removes the WAL file.
    assert not db_path.with_name(db_path.name + "-wal").exists()
    reopened = open_store(f"sqlite:///{db_path}")
    try:
        views = [await reopened.get_task_view(task.id) for task in created if task is not None]
        assert all(view is not None for view in views)
        await assert_books_balance(reopened)
    finally:
        await reopened.close()
