"""The dashboard's SQL on both stores: sessions (hash only, expiry, revoked key), one account's
pages and charts never holding another's rows, per-hour buckets the same on both databases, the
top-up's reason kept in the ledger, the operator's error counts and latency sample."""

from __future__ import annotations

import time

from cracker.domain.accounts import Scope
from cracker.domain.dashboard import AccountRow, TaskRow
from cracker.store import Rejection, Store
from cracker.store import dashboard as sql
from cracker.store import keys as key_sql

from .helpers import TYPE, claim, complete, create_tasks, new_account, new_task


async def _key(store: Store, account_id: str) -> str:
    key_id = f"k-{account_id[-8:]}"
    await store.write(lambda tx: tx.insert_api_key(key_id, account_id, key_id.ljust(64, "0"), "ck_x", Scope.CLIENT,
                                                   time.time()))
    return key_id


async def test_a_session_lives_until_it_expires_is_ended_or_its_key_is_revoked(store: Store) -> None:
    account = await new_account(store)
    key_id = await _key(store, account)
    at = time.time()

    async def add(token_hash: str, expires_at: float) -> None:
        await store.write(lambda tx: sql.insert_session(tx, token_hash, key_id, account, Scope.CLIENT, "csrf", at,
                                                        expires_at))

    await add("a" * 64, at + 60)
    await add("b" * 64, at - 1)
    await add("c" * 64, at + 60)
    found = await store.read(lambda r: sql.get_session(r, "a" * 64, at))
    assert found is not None and (found.account_id, found.csrf_token, found.scope) == (account, "csrf", Scope.CLIENT)
    assert await store.read(lambda r: sql.get_session(r, "b" * 64, at)) is None  # expired
    assert await store.write(lambda tx: sql.delete_expired_sessions(tx, at)) == 1
    await store.write(lambda tx: sql.delete_session(tx, "a" * 64))
    assert await store.read(lambda r: sql.get_session(r, "a" * 64, at)) is None  # signed out
    assert await store.read(lambda r: sql.get_session(r, "c" * 64, at)) is not None
    await store.write(lambda tx: key_sql.revoke_key(tx, key_id, at))
    assert await store.read(lambda r: sql.get_session(r, "c" * 64, at)) is None  # its key revoked


async def test_an_accounts_pages_and_buckets_hold_only_its_own_rows(store: Store) -> None:
    mine, theirs = await new_account(store), await new_account(store)
    my_tasks = await create_tasks(store, mine, 3)
    await create_tasks(store, theirs, 2)
    claims = await claim(store, "w", 10)
    await complete(store, [c for c in claims if c.task.id == my_tasks[0].id])
    await store.reject_task(my_tasks[1].id, Rejection("solve_timeout", "late", charged=False), time.time())
    await store.write(lambda tx: tx.top_up(mine, 500, time.time(), note="goodwill"))

    page = await store.read(lambda r: sql.tasks_page(r, mine, task_type=None, status=None, since=None, until=None,
                                                     limit=10))
    assert {row.id for row in page} == {t.id for t in my_tasks}
    assert [row.id for row in page] == sorted((t.id for t in my_tasks), key=lambda i: -next(
        t.created_at for t in my_tasks if t.id == i))  # newest first
    done = await store.read(lambda r: sql.tasks_page(r, mine, task_type=TYPE, status="completed", since=None,
                                                     until=None, limit=10))
    assert [row.id for row in done] == [my_tasks[0].id]
    assert await store.read(lambda r: sql.task_rows(r, theirs, [t.id for t in my_tasks])) == []

    ledger = await store.read(lambda r: sql.ledger_page(r, mine, kind=None, since=None, until=None, before_id=None,
                                                        limit=100))
    assert ledger[0].kind == "topup" and ledger[0].note == "goodwill"  # newest first, the reason kept
    assert {row.task_id for row in ledger if row.task_id} == {t.id for t in my_tasks}
    older = await store.read(lambda r: sql.ledger_page(r, mine, kind="hold", since=None, until=None,
                                                       before_id=ledger[0].id, limit=100))
    assert len(older) == 3 and all(row.kind == "hold" for row in older)

    since = time.time() - 3600
    buckets = await store.read(lambda r: sql.bucket_counts(r, since, 3600, account_id=mine))
    hour = int(my_tasks[0].created_at // 3600) * 3600
    assert {(b.bucket, b.status): b.count for b in buckets} == {
        (float(hour), "completed"): 1, (float(hour), "rejected"): 1, (float(hour), "running"): 1,
    }
    assert sum(b.cost for b in buckets) == my_tasks[0].price  # only the solved one was captured
    everyone = await store.read(lambda r: sql.bucket_counts(r, since, 3600))
    assert sum(b.count for b in everyone) == 5


async def test_the_operator_reads_errors_latencies_and_accounts(store: Store) -> None:
    account = await new_account(store)
    tasks = await create_tasks(store, account, 3)
    claims = await claim(store, "w", 10)
    await complete(store, [c for c in claims if c.task.id == tasks[0].id])
    for task in tasks[1:]:
        await store.reject_task(task.id, Rejection("unsolvable", "no", charged=False), time.time())
    since = time.time() - 60
    buckets = await store.read(lambda r: sql.bucket_counts(r, since, 3600))
    assert {(b.status, b.error_code): b.count for b in buckets} == {
        ("completed", None): 1, ("rejected", "unsolvable"): 2,
    }
    latencies = await store.read(lambda r: sql.recent_latencies(r, since, 10))
    assert [(t, round(c, 3)) for t, c, _ in latencies] == [(TYPE, round(tasks[0].created_at, 3))]
    assert latencies[0][2] >= 0
    found = await store.read(lambda r: sql.account_rows(r, search=account, limit=10))
    assert [row.id for row in found] == [account]
    assert await store.read(lambda r: sql.account_rows(r, search="no_such%", limit=10)) == []


async def test_queue_samples_keep_one_row_per_slot_and_type_and_are_purged(store: Store) -> None:
    """Two processes sampling the same slot write one row per type (the first wins, the second's
    insert does nothing: no sample counted twice); the hourly peaks take the most of each hour's
    samples on both databases; the purge deletes only samples older than its cut-off."""
    hour = (int(time.time()) // 3600 - 2) * 3600.0
    first = {("a", "pending"): 5, ("a", "running"): 2, ("b", "running"): 1}
    assert await store.write(lambda tx: sql.insert_queue_samples(tx, hour, first)) == 2
    again = {("a", "pending"): 50, ("a", "running"): 20, ("c", "pending"): 3}
    assert await store.write(lambda tx: sql.insert_queue_samples(tx, hour, again)) == 1  # only c is new
    assert await store.write(lambda tx: sql.insert_queue_samples(tx, hour + 60, {("a", "pending"): 7})) == 1
    assert await store.write(lambda tx: sql.insert_queue_samples(tx, hour + 3600, {("a", "running"): 4})) == 1
    assert await store.write(lambda tx: sql.insert_queue_samples(tx, hour + 3600, {})) == 0

    peaks = await store.read(lambda r: sql.queue_peaks(r, hour, 3600))
    assert {(p.bucket, p.type): (p.pending, p.running) for p in peaks} == {
        (hour, "a"): (7, 2), (hour, "b"): (0, 1), (hour, "c"): (3, 0), (hour + 3600, "a"): (0, 4),
    }
    later = await store.read(lambda r: sql.queue_peaks(r, hour + 3600, 3600))
    assert [(p.bucket, p.type) for p in later] == [(hour + 3600, "a")]

    assert await store.write(lambda tx: sql.purge_queue_samples(tx, hour + 3600)) == 4
    left = await store.read(lambda r: sql.queue_peaks(r, 0, 3600))
    assert [(p.bucket, p.type, p.running) for p in left] == [(hour + 3600, "a", 4)]


async def test_task_and_account_pages_walk_every_row_once_newest_first(store: Store) -> None:
    """Keyset pages (the last row's created-at and id) of an account's tasks and of the accounts
    list return every row exactly once, newest first, also across rows created at the same instant;
    another account's tasks never appear on a page."""
    mine, theirs = await new_account(store), await new_account(store)
    at = time.time()
    # Three pairs created at the same instant: a page boundary falls inside a pair.
    made = [await store.create_task(new_task(mine, at=at + i // 2)) for i in range(6)]
    await store.create_task(new_task(theirs, at=at + 1))
    expected = [t.id for t in sorted((t for t in made if t is not None), key=lambda t: (t.created_at, t.id),
                                     reverse=True)]

    async def task_page(before: tuple[float, str] | None, limit: int) -> list[TaskRow]:
        return await store.read(lambda r: sql.tasks_page(
            r, mine, task_type=None, status=None, since=None, until=None, limit=limit, before=before))

    seen: list[str] = []
    page = await task_page(None, 3)
    while page:
        seen += [row.id for row in page]
        page = await task_page((page[-1].created_at, page[-1].id), 2)
    assert seen == expected

    async def account_page(before: tuple[float, str] | None) -> list[AccountRow]:
        return await store.read(lambda r: sql.account_rows(r, search=None, limit=2, before=before))

    more = [await new_account(store) for _ in range(3)]
    listed: list[str] = []
    accounts_page = await account_page(None)
    while accounts_page:
        listed += [row.id for row in accounts_page]
        accounts_page = await account_page((accounts_page[-1].created_at, accounts_page[-1].id))
    assert sorted(listed) == sorted([mine, theirs, *more]) and len(listed) == len(set(listed))
