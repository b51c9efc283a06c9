"""Money, on both stores: the hold at creation, capture or release at the end with their ledger
rows, the balance columns as the ledger's projection, and the Idempotency-Key."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import pytest

from cracker.domain.tasks import Task
from cracker.store import ConstraintViolation, IdempotencyKey, IdempotencyKeyTaken, Rejection, Store

from .helpers import PRICE, assert_books_balance, balance, claim, complete, create_tasks, new_account, new_task


async def test_a_create_holds_the_price_with_its_ledger_row(store: Store) -> None:
    account = await new_account(store, 100)
    new = new_task(account, params={"site_key": "k", "big": 2**70}, callback_url="https://example.com/h")
    created = await store.create_task(new)
    assert created is not None
    assert await store.get_task(new.task_id) == created  # what create answers is what it wrote
    assert (created.price, created.cost, created.attempts, created.params) == (PRICE, None, 0, new.params)
    assert await balance(store, account) == (100 - PRICE, PRICE)
    entries = await store.read(lambda r: r.ledger_entries(account))
    assert entries == [(None, "topup", 100, 0), (new.task_id, "hold", -PRICE, PRICE)]
    await assert_books_balance(store)


async def test_a_short_balance_refuses_and_writes_nothing(store: Store) -> None:
    account = await new_account(store, PRICE - 1)
    new = new_task(account, key="k1")
    assert await store.create_task(new) is None
    assert await store.get_task(new.task_id) is None
    assert await store.find_idempotency_key(account, "k1", 0) is None
    assert await balance(store, account) == (PRICE - 1, 0)
    assert await store.create_task(new_task("no-such-account")) is None
    await assert_books_balance(store)


async def test_completion_captures_the_hold(store: Store) -> None:
    account = await new_account(store, 100)
    await create_tasks(store, account, 2)
    claims = await claim(store, "w", 2)
    done = await complete(store, claims)
    assert all(t.cost == PRICE for t in done)
    assert await balance(store, account) == (100 - 2 * PRICE, 0)
    entries = await store.read(lambda r: r.ledger_entries(account))
    kinds = [(kind, available, held) for _, kind, available, held in entries]
    assert kinds[-2:] == [("capture", 0, -PRICE)] * 2
    await assert_books_balance(store)


@pytest.mark.parametrize(("charged", "cost"), [(False, 0), (True, PRICE)])
async def test_rejection_releases_the_hold_unless_charged(store: Store, charged: bool, cost: int) -> None:
    account = await new_account(store, 100)
    await create_tasks(store, account, 1)
    (lease,) = await claim(store, "w", 1)
    rejection = Rejection("captcha_unsolvable", "no", charged=charged)
    ended = await store.reject_task(lease.task.id, rejection, time.time(), fence=("w", lease.attempt))
    assert ended is not None and ended.cost == cost
    assert await balance(store, account) == (100 - cost, 0)
    last = (await store.read(lambda r: r.ledger_entries(account)))[-1]
    assert last == ((lease.task.id, "capture", 0, -PRICE) if charged else (lease.task.id, "release", PRICE, -PRICE))
    await assert_books_balance(store)


async def test_completions_and_rejections_racing_on_one_task_end_it_once(store: Store, second_store: Store) -> None:
    account = await new_account(store, 1000)
    await create_tasks(store, account, 20)
    claims = await claim(store, "w", 20)
    cancel = Rejection("cancelled", "by the client", charged=False)
    ends = await asyncio.gather(*(
        coro
        for c in claims
        for coro in (complete(store, [c]), second_store.reject_task(c.task.id, cancel, time.time()))
    ))
    ended: list[Task] = [t for e in ends for t in (e if isinstance(e, list) else [e] if e is not None else [])]
    assert sorted(t.id for t in ended) == sorted(c.task.id for c in claims)
    captured = sum(t.cost == PRICE for t in ended)
    assert await balance(store, account) == (1000 - captured * PRICE, 0)
    await assert_books_balance(store)


async def test_holds_never_overspend_under_concurrent_creates(store: Store, second_store: Store) -> None:
    account = await new_account(store, 5 * PRICE)
    results = await asyncio.gather(*(
        s.create_task(new_task(account)) for _ in range(10) for s in (store, second_store)
    ))
    assert sum(r is not None for r in results) == 5
    assert await balance(store, account) == (0, 5 * PRICE)
    await assert_books_balance(store)


async def test_concurrent_completion_batches_share_accounts_without_deadlock(
    store: Store, second_store: Store
) -> None:
    accounts = [await new_account(store, 1000 * PRICE) for _ in range(4)]
    for index in range(80):
        assert await store.create_task(new_task(accounts[index % 4], params={"i": index})) is not None
    claims = await claim(store, "w1", 80)
    assert len(claims) == 80
    # Many batches from two stores at once, each batch touching every account in another order.
    batches = [claims[i::8] for i in range(8)]
    results = await asyncio.gather(*(
        complete(store if i % 2 else second_store, list(reversed(b)) if i % 3 else b) for i, b in enumerate(batches)
    ))
    assert sum(len(r) for r in results) == 80
    for account in accounts:
        assert await balance(store, account) == (1000 * PRICE - 20 * PRICE, 0)
    await assert_books_balance(store)


async def test_a_second_settlement_is_refused_by_the_ledger(store: Store) -> None:
    account = await new_account(store)
    await create_tasks(store, account, 1)
    (lease,) = await claim(store, "w", 1)
    (done,) = await complete(store, [lease])
    with pytest.raises(ConstraintViolation):
        await store.write(lambda tx: tx.settle(done, capture=True, now=time.time()))
    await assert_books_balance(store)  # rolled back whole: the balance moved back with it


async def test_a_live_idempotency_key_is_taken_and_nothing_is_written(store: Store) -> None:
    account = await new_account(store, 100)
    first = await store.create_task(new_task(account, key="same", request_hash="h1"))
    assert first is not None
    assert await store.find_idempotency_key(account, "same", 0) == ("h1", first.id)
    again = new_task(account, key="same", request_hash="h2")
    with pytest.raises(IdempotencyKeyTaken):
        await store.create_task(again)
    assert await store.get_task(again.task_id) is None
    assert await balance(store, account) == (100 - PRICE, PRICE)
    # Another account's key of the same name is its own.
    other = await new_account(store, 100)
    assert await store.create_task(new_task(other, key="same")) is not None
    await assert_books_balance(store)


async def test_an_expired_idempotency_key_is_taken_over(store: Store) -> None:
    account = await new_account(store, 100)
    old = new_task(account, key="k", at=time.time() - 7200)
    assert await store.create_task(old) is not None
    fresh = new_task(account, key="k", request_hash="h2")  # keys before an hour ago have expired
    created = await store.create_task(fresh)
    assert created is not None and created.id == fresh.task_id
    assert await store.find_idempotency_key(account, "k", 0) == ("h2", fresh.task_id)
    assert await balance(store, account) == (100 - 2 * PRICE, 2 * PRICE)
    await assert_books_balance(store)


async def test_racing_creates_with_one_key_make_one_task(store: Store, second_store: Store) -> None:
    account = await new_account(store, 100 * PRICE)
    at = time.time()
    key = IdempotencyKey("race", "h", expired_before=at - 3600)

    async def create(s: Store) -> str | None:
        try:
            task = await s.create_task(replace(new_task(account, at=at), idempotency=key))
        except IdempotencyKeyTaken:
            return None
        return task.id if task is not None else None

    results = await asyncio.gather(*(create(s) for _ in range(5) for s in (store, second_store)))
    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    assert await store.find_idempotency_key(account, "race", 0) == ("h", winners[0])
    assert await balance(store, account) == (99 * PRICE, PRICE)
    await assert_books_balance(store)



async def test_an_account_is_found_by_name_the_oldest_first(store: Store) -> None:
    """``find_account`` (the demo account's lookup) answers the account of that name created first
    by its creation time, not the first row stored, nor another name's account."""
    await store.write(lambda tx: tx.insert_account("acct-newer", "same-name", 2_000.0))
    await store.write(lambda tx: tx.insert_account("acct-older", "same-name", 1_000.0))
    await store.write(lambda tx: tx.insert_account("acct-other", "other-name", 500.0))
    assert await store.read(lambda r: r.find_account("same-name")) == "acct-older"
    assert await store.read(lambda r: r.find_account("other-name")) == "acct-other"
    assert await store.read(lambda r: r.find_account("no-such-name")) is None
