"""Creates that reach the store in one event-loop turn: on PostgreSQL one statement for all of them
(``store/pg_groups.py``), on SQLite one transaction; on both, each create keeps its own outcome."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import asyncpg
import pytest

from cracker.domain.clock import new_id
from cracker.store import Store, open_store, pg_sql
from cracker.store.interface import NewTask
from cracker.store.postgres import PostgresStore

from .contract.helpers import empty
from .test_task_flow import PRICE, balances_match_ledger, new_account


def new_task(account: str, task_id: str | None = None) -> NewTask:
    now = time.time()
    return NewTask(task_id=task_id or new_id(), account_id=account, type="turnstile", params={"n": 1}, price=PRICE,
                   created_at=now, deadline_at=now + 300)


async def create_all(store: Store, tasks: list[NewTask]) -> list[object]:
    """Every create started in the same loop turn, in list order; each one's task, None or error."""
    return await asyncio.gather(*(store.create_task(t) for t in tasks), return_exceptions=True)


async def test_a_turns_creates_take_what_each_account_can_pay(store: Store) -> None:
    rich = await new_account(store, 100 * PRICE)
    short = await new_account(store, 3 * PRICE - 1)  # pays for two of its three
    tasks = [new_task(account) for _ in range(3) for account in (rich, short)]
    results = await create_all(store, tasks)
    created = [t.task_id for t, r in zip(tasks, results, strict=True) if r is not None]
    short_tasks = [t.task_id for t in tasks if t.account_id == short]
    # The rich account gets all three; the short one its first two, in the order they came.
    assert created == [t.task_id for t in tasks if t.account_id == rich or t.task_id in short_tasks[:2]]
    assert not any(isinstance(r, BaseException) for r in results)
    for account, held in ((rich, 3 * PRICE), (short, 2 * PRICE)):
        balance = await store.read(lambda r, a=account: r.get_balance(a))
        assert balance is not None and balance.held == held
    assert await store.read(lambda r: r.get_task(short_tasks[2])) is None
    await balances_match_ledger(store)


async def test_a_create_that_fails_fails_alone(store: Store) -> None:
    account = await new_account(store, 100 * PRICE)
    taken = new_task(account)
    assert await store.create_task(taken) is not None
    # A create whose id is taken shares a turn with good ones: it alone fails, nothing else moves.
    tasks = [new_task(account), new_task(account, taken.task_id), new_task(account)]
    results = await create_all(store, tasks)
    assert results[0] is not None and not isinstance(results[0], BaseException)
    assert isinstance(results[1], Exception)
    assert results[2] is not None and not isinstance(results[2], BaseException)
    balance = await store.read(lambda r: r.get_balance(account))
    assert balance is not None and balance.held == 3 * PRICE
    await balances_match_ledger(store)


@pytest.fixture
async def pg(postgres_url: str) -> AsyncIterator[PostgresStore]:
    """The PostgreSQL store alone: these tests are about its statements."""
    opened = open_store(postgres_url)
    assert isinstance(opened, PostgresStore)
    await empty(opened)
    try:
        yield opened
    finally:
        await opened.close()


async def test_on_postgresql_a_turns_creates_are_one_statement(
    pg: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    accounts = [await new_account(pg, 100 * PRICE) for _ in range(3)]
    groups: list[int] = []
    run_group = pg._create_group

    async def counted(args: list[object], skip_locked: bool) -> set[str]:
        ids = args[0]
        assert isinstance(ids, list)
        groups.append(len(ids))
        return await run_group(args, skip_locked)

    monkeypatch.setattr(pg._create_groups, "_create_group", counted)
    results = await create_all(pg, [new_task(accounts[i % 3]) for i in range(12)])
    assert all(r is not None and not isinstance(r, BaseException) for r in results)
    assert groups == [12]
    await balances_match_ledger(pg)


async def test_on_postgresql_a_claim_does_not_wait_for_the_disk(pg: PostgresStore, postgres_url: str) -> None:
    """The claim sets ``synchronous_commit`` off for its own transaction (pg_sql's comment says why)."""
    account = await new_account(pg, 100 * PRICE)
    assert await pg.create_task(new_task(account)) is not None
    conn = await asyncpg.connect(postgres_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        async with conn.transaction():
            await conn.execute("SET LOCAL synchronous_commit = on")
            claimed = await conn.fetch(pg_sql.CLAIM[False], ["turnstile"], 1, "w", time.time() + 30, time.time(), 0,
                                       None)
            assert len(claimed) == 1
            assert await conn.fetchval("SHOW synchronous_commit") == "off"
        # Only that transaction: the session's own setting is untouched.
        assert await conn.fetchval("SHOW synchronous_commit") == "on"
    finally:
        await conn.close()


async def test_on_postgresql_an_account_whose_row_is_held_does_not_hold_up_another(
    pg: PostgresStore, postgres_url: str
) -> None:
    """A's row is held (as by a long run of its own creates and completions); B's create shares a
    group with A's and must not wait for it."""
    busy, other = await new_account(pg, 100 * PRICE), await new_account(pg, 100 * PRICE)
    conn = await asyncpg.connect(postgres_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        holding = conn.transaction()
        await holding.start()
        await conn.execute("SELECT 1 FROM accounts WHERE id = $1 FOR UPDATE", busy)
        busy_creates = [asyncio.ensure_future(pg.create_task(new_task(busy))) for _ in range(2)]
        other_creates = [asyncio.ensure_future(pg.create_task(new_task(other))) for _ in range(2)]
        done, _ = await asyncio.wait(other_creates, timeout=5)
        assert len(done) == 2 and all(f.result() is not None for f in done)
        assert not any(f.done() for f in busy_creates)  # still waiting for its own row
        await holding.rollback()
        assert all(task is not None for task in await asyncio.gather(*busy_creates))
    finally:
        await conn.close()
    for account in (busy, other):
        balance = await pg.read(lambda r, a=account: r.get_balance(a))
        assert balance is not None and balance.held == 2 * PRICE
    await balances_match_ledger(pg)
