"""Claiming webhook deliveries with a per-account cap, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

from cracker.domain.clock import new_id
from cracker.store import Store, Writer, webhooks
from tests.integration.store.contract.helpers import delivery_pick_statements


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


async def test_fair_claims_from_two_dispatchers_never_overlap(store: Store, second_store: Store) -> None:
    at = time.time() - 10
    accounts = [await _account_with_deliveries(store, 10, at) for _ in range(3)]
    now = time.time()
    rounds = await asyncio.gather(*(
        s.write(lambda tx: webhooks.claim_due(tx, 3, 60, now, per_account=2, in_flight={}))
        for _ in range(6) for s in (store, second_store)
    ))
    for claimed in rounds:
        assert len(claimed) <= 3
        assert max(Counter(d.account_id for d in claimed).values(), default=0) <= 2
    leased = [d.id for r in rounds for d in r]
    assert len(leased) == len(set(leased))
    rest = await store.write(lambda tx: webhooks.claim_due(tx, 100, 60, now))
    assert len(leased) + len(rest) == 30
    assert {d.account_id for d in rest} <= set(accounts)


async def test_the_fair_pick_locks_its_window_once(store: Store) -> None:
    """On PostgreSQL the candidate window is a MATERIALIZED CTE with SKIP LOCKED, as in
    ``skip_locked_pick``: a subquery rerun per row could lease more than the limit."""
    statements = await delivery_pick_statements(
        store, lambda tx: webhooks.claim_due(tx, 3, 60, time.time(), per_account=2, in_flight={"a": 1})
    )
    (sql,) = statements
    if store.dialect == "postgresql":
        assert "MATERIALIZED" in sql and "SKIP LOCKED" in sql and "row_number" in sql.lower()
