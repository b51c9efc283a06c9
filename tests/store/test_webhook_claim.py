"""Claiming webhook deliveries with a per-account cap, on SQLite and PostgreSQL."""

from __future__ import annotations

import time

from cracker.domain.clock import new_id
from cracker.store import webhooks
from cracker.store.sql import Store, Writer


async def _account_with_deliveries(store: Store, count: int, at: float) -> str:
    account_id = new_id()

    def work(tx: Writer) -> None:
        tx.insert_account(account_id, "hooks", at)
        for i in range(count):
            webhooks.enqueue_delivery(tx, new_id(), new_id(), account_id, "https://example.com/", at + i * 1e-3)

    await store.write(work)
    return account_id


async def test_one_accounts_backlog_leaves_room_for_the_others(store: Store) -> None:
    at = time.time() - 100
    flood = await _account_with_deliveries(store, 200, at)  # due first, and many
    quiet = await _account_with_deliveries(store, 1, at + 1)
    later = time.time()

    first = await store.write(lambda tx: webhooks.claim_due(tx, 8, 30, later, per_account=2, in_flight={}))
    assert [d.account_id for d in first] == [flood, flood]  # its share, not the whole claim
    # With two of its deliveries in flight the flood's queue is skipped, however long it is.
    second = await store.write(lambda tx: webhooks.claim_due(tx, 8, 30, later, per_account=2, in_flight={flood: 2}))
    assert [d.account_id for d in second] == [quiet]
    # One of its two slots in use: one more.
    third = await store.write(lambda tx: webhooks.claim_due(tx, 8, 30, later, per_account=2, in_flight={flood: 1}))
    assert [d.account_id for d in third] == [flood]


async def test_claimed_deliveries_are_leased(store: Store) -> None:
    at = time.time() - 10
    await _account_with_deliveries(store, 3, at)
    now = time.time()
    claimed = await store.write(lambda tx: webhooks.claim_due(tx, 8, 30, now, per_account=4, in_flight={}))
    assert len(claimed) == 3
    assert await store.write(lambda tx: webhooks.claim_due(tx, 8, 30, now, per_account=4, in_flight={})) == []
    # After the lease, due again.
    assert len(await store.write(lambda tx: webhooks.claim_due(tx, 8, 30, now + 31, per_account=4))) == 3
