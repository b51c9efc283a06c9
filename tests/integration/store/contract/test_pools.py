"""Pool trust on both stores: the operators' grants, the tasks' history, a lease handed back unused."""

from __future__ import annotations

import time

from cracker.domain.tasks import TaskStatus
from cracker.domain.workers import PoolGrant, TaskEvent
from cracker.store import Store, pools, retention

from .helpers import TYPE, assert_books_balance, claim, complete, create_tasks, new_account


async def test_a_grant_is_replaced_whole_and_dropped(store: Store) -> None:
    account_id = await new_account(store)
    assert await store.read(lambda r: pools.get_grant(r, account_id)) is None
    first = PoolGrant(account_id, all_types=False, types=("image-to-text", "altcha"), updated_at=1.0)
    await store.write(lambda tx: pools.set_grant(tx, first))
    second = PoolGrant(account_id, all_types=True, types=(), updated_at=2.0)
    await store.write(lambda tx: pools.set_grant(tx, second))
    assert await store.read(lambda r: pools.get_grant(r, account_id)) == second
    assert await store.write(lambda tx: pools.delete_grant(tx, account_id)) is True
    assert await store.read(lambda r: pools.get_grant(r, account_id)) is None


async def test_history_is_kept_in_order_and_ages_out_with_its_task(store: Store) -> None:
    account_id = await new_account(store)
    (task,) = await create_tasks(store, account_id, 1)
    (claimed,) = await claim(store, "pool-1", 1)
    events = [
        TaskEvent(task.id, time.time(), "leased", "pool-1", "eu", account_id, 1),
        TaskEvent(task.id, time.time(), "rejected", "pool-1", "eu", account_id, 1, "upstream_error"),
    ]
    await store.write(lambda tx: pools.record_events(tx, events))
    assert await store.read(lambda r: pools.task_history(r, task.id)) == events
    await complete(store, [claimed])
    assert await store.write(lambda tx: retention.delete_finished(tx, time.time() + 1, 10)) == 1
    assert await store.read(lambda r: pools.task_history(r, task.id)) == []


async def test_a_lease_never_handed_out_goes_back_with_its_attempt(store: Store) -> None:
    account_id = await new_account(store)
    (task,) = await create_tasks(store, account_id, 1)
    await claim(store, "pool-1", 1)
    assert await store.write(lambda tx: pools.release_leases(tx, "someone-else", [task.id])) == 0
    assert await store.write(lambda tx: pools.release_leases(tx, "pool-1", [task.id])) == 1
    back = await store.get_task(task.id)
    assert back is not None
    assert (back.status, back.lease_owner, back.attempts) == (TaskStatus.PENDING, None, 0)
    (again,) = await claim(store, "pool-2", 1)
    assert again.attempt == 1
    await assert_books_balance(store)


async def test_a_claim_limited_to_accounts_takes_only_their_tasks(store: Store) -> None:
    mine, theirs = await new_account(store), await new_account(store)
    (older,) = await create_tasks(store, theirs, 1)
    (newer,) = await create_tasks(store, mine, 1)
    assert await store.claim_tasks([TYPE], "pool", 10, 30, time.time(), accounts=[]) == []
    limited = await store.claim_tasks([TYPE], "pool", 10, 30, time.time(), accounts=[mine])
    assert [c.task.id for c in limited] == [newer.id]
    rest = await store.claim_tasks([TYPE], "pool", 10, 30, time.time())
    assert [c.task.id for c in rest] == [older.id]
