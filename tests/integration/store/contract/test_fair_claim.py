"""The fair claim, on both stores: round robin between accounts, and the per-account in-flight cap."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

from cracker.domain.tasks import ClaimedTask
from cracker.store import Store

from .helpers import TYPE, complete, create_tasks, new_account, new_task


async def _claim(store: Store, limit: int, cap: int = 0, owner: str = "w") -> list[ClaimedTask]:
    return await store.claim_tasks([TYPE], owner, limit, 30, time.time(), max_running_per_account=cap)


def _ids(claims: list[ClaimedTask]) -> set[str]:
    return {c.task.id for c in claims}


async def test_a_claim_takes_one_task_of_every_account_before_a_second_of_any(store: Store) -> None:
    flood, late, later = await new_account(store), await new_account(store), await new_account(store)
    a = await create_tasks(store, flood, 6)
    b = await create_tasks(store, late, 2)
    (c,) = await create_tasks(store, later, 1)
    assert _ids(await _claim(store, 4)) == {a[0].id, b[0].id, c.id, a[1].id}
    # Both accounts have work in flight now; the one with fewer goes first, then the older.
    assert _ids(await _claim(store, 2)) == {b[1].id, a[2].id}
    assert [x.task.id for x in await _claim(store, 10)] == [t.id for t in a[3:]]


async def test_a_claim_of_one_serves_an_idle_account_ahead_of_a_backlog(store: Store) -> None:
    """A busy worker frees one slot at a time: each freed slot must not go back to the oldest backlog."""
    flood, other = await new_account(store), await new_account(store)
    backlog = await create_tasks(store, flood, 10)
    assert _ids(await _claim(store, 3)) == {t.id for t in backlog[:3]}
    (late,) = await create_tasks(store, other, 1)
    assert _ids(await _claim(store, 1)) == {late.id}


async def test_the_cap_leaves_an_accounts_tasks_pending_until_its_running_ones_end(store: Store) -> None:
    flood, other = await new_account(store), await new_account(store)
    backlog = await create_tasks(store, flood, 5)
    first = await _claim(store, 10, cap=2)
    assert _ids(first) == {t.id for t in backlog[:2]}
    assert await _claim(store, 10, cap=2) == []
    (late,) = await create_tasks(store, other, 1)
    assert _ids(await _claim(store, 10, cap=2)) == {late.id}
    await complete(store, first[:1])
    assert _ids(await _claim(store, 10, cap=2)) == {backlog[2].id}
    assert await _claim(store, 10, cap=2) == []
    # A lower cap than what is running takes nothing; cap 0 is no cap.
    assert await _claim(store, 10, cap=1) == []
    assert _ids(await _claim(store, 10, cap=0)) == {t.id for t in backlog[3:]}


async def test_concurrent_capped_claims_stay_disjoint(store: Store, second_store: Store) -> None:
    accounts = [await new_account(store) for _ in range(6)]
    for account in accounts:
        await create_tasks(store, account, 10)
    rounds = await asyncio.gather(
        *(_claim(s, 4, cap=3, owner=f"w{i}") for i in range(8) for s in (store, second_store))
    )
    claimed = [c.task.id for batch in rounds for c in batch]
    assert len(claimed) == len(set(claimed))
    assert all(len(batch) <= 4 for batch in rounds)
    # Claims that overlap may each fill an account's cap (PostgreSQL): at most cap x claims.
    before = _per_account(rounds)
    assert max(before.values()) <= 3 * len(rounds)
    # One claim after them tops every account up to the cap, and no further.
    after = _per_account([await _claim(store, 100, cap=3)])
    assert {a: before.get(a, 0) + after.get(a, 0) for a in accounts} == {a: max(before.get(a, 0), 3) for a in accounts}


def _per_account(rounds: list[list[ClaimedTask]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for batch in rounds:
        for c in batch:
            counts[c.task.account_id] = counts.get(c.task.account_id, 0) + 1
    return counts


async def test_the_cap_counts_the_running_tasks_of_the_claimed_types_only(store: Store) -> None:
    """Per lane: an account's proof of work at its cap leaves its OCR share (another claimer's types) free."""
    account = await new_account(store)
    await create_tasks(store, account, 3)
    assert len(await _claim(store, 10, cap=2)) == 2
    other = await store.create_task(replace(new_task(account), type="altcha"))
    assert other is not None
    assert await _claim(store, 10, cap=2) == []
    taken = await store.claim_tasks(["altcha"], "ocr", 10, 30, time.time(), max_running_per_account=2)
    assert _ids(taken) == {other.id}
