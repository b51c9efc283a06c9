"""The store's queue, leases, worker registry and ledger, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import asyncio
import time

import pytest

from cracker.domain.clock import new_id
from cracker.domain.tasks import ClaimedTask, Task, TaskStatus
from cracker.domain.workers import WorkerInfo, WorkerKind
from cracker.store import leases
from cracker.store.sql import Store, Writer

PRICE = 9


async def account_with_tasks(store: Store, count: int, *, pool_only: bool = False, balance: int = 10_000) -> str:
    account_id = new_id()
    start = time.time()

    def work(tx: Writer) -> None:
        tx.insert_account(account_id, "t", start)
        tx.top_up(account_id, balance, start)
        for i in range(count):
            task_id = new_id()
            assert tx.hold(account_id, task_id, PRICE, start)
            tx.insert_task(
                task_id=task_id, account_id=account_id, task_type="turnstile", params={"i": i}, price=PRICE,
                now=start + i * 0.001, deadline_at=start + 300, pool_only=pool_only,
            )

    await store.write(work)
    return account_id


async def claim(store: Store, owner: str, limit: int, *, lease_s: float = 30, at: float | None = None,
                builtin_only: bool = False) -> list[ClaimedTask]:
    when = time.time() if at is None else at
    return await store.write(
        lambda tx: tx.claim_tasks(["turnstile"], owner, limit, lease_s, when, builtin_only=builtin_only)
    )


async def complete(store: Store, claims: list[ClaimedTask], owner: str | None = None) -> list[Task]:
    at = time.time()

    def work(tx: Writer) -> list[Task]:
        done = leases.complete_fenced(
            tx, [(c.task.id, owner or c.lease_owner, c.attempt, {"token": "t"}) for c in claims], at
        )
        for task in done:
            tx.settle(task, capture=True, now=at)
        return done

    return await store.write(work)


async def assert_ledger_matches_balances(store: Store) -> None:
    totals = await store.read(lambda r: r.ledger_totals())
    balances = await store.read(lambda r: r.account_balances())
    assert totals == balances


async def test_claims_oldest_first_in_batches_and_completion_settles(store: Store) -> None:
    await account_with_tasks(store, 5)
    first = await claim(store, "w1", 3)
    assert [c.task.params["i"] for c in first] == [0, 1, 2]
    assert all(c.attempt == 1 and c.task.status is TaskStatus.RUNNING for c in first)
    done = await complete(store, first)
    assert sorted(t.id for t in done) == sorted(c.task.id for c in first)
    assert all(t.status is TaskStatus.COMPLETED and t.cost == PRICE for t in done)
    assert [c.task.params["i"] for c in await claim(store, "w2", 10)] == [3, 4]
    await assert_ledger_matches_balances(store)


async def test_a_completion_under_a_lost_lease_is_refused(store: Store) -> None:
    await account_with_tasks(store, 1)
    (stale,) = await claim(store, "w1", 1, lease_s=0.01)
    requeued = await store.write(lambda tx: leases.requeue_expired_leases(tx, time.time() + 1, 3, 10))
    assert requeued == [stale.task.id]
    (fresh,) = await claim(store, "w2", 1)
    assert fresh.attempt == 2
    assert await complete(store, [stale]) == []  # the old owner's result is dropped
    assert await complete(store, [fresh], owner="w1") == []  # the right attempt, the wrong owner
    (done,) = await complete(store, [fresh])
    assert done.status is TaskStatus.COMPLETED
    assert await complete(store, [fresh]) == []  # never twice
    await assert_ledger_matches_balances(store)


async def test_concurrent_claimers_never_share_a_task(store: Store, second_store: Store) -> None:
    await account_with_tasks(store, 60)
    rounds = await asyncio.gather(*(
        claim(s, f"w{i}", 4) for i in range(12) for s in (store, second_store)
    ))
    claimed = [c.task.id for batch in rounds for c in batch]
    assert len(claimed) == len(set(claimed))
    rest = await claim(store, "last", 100)
    assert len(claimed) + len(rest) == 60


async def test_builtin_claims_skip_tasks_only_a_pool_can_solve(store: Store) -> None:
    await account_with_tasks(store, 2, pool_only=True)
    assert await claim(store, "builtin", 10, builtin_only=True) == []
    assert len(await claim(store, "pool", 10)) == 2


def worker(worker_id: str, kind: WorkerKind = WorkerKind.BUILTIN, *, expires_in: float = 10,
           types: tuple[str, ...] = ("turnstile",)) -> WorkerInfo:
    at = time.time()
    return WorkerInfo(id=worker_id, kind=kind, account_id=None, name="n", types=types, concurrency=2,
                      started_at=at, heartbeat_at=at, expires_at=at + expires_in)


async def test_heartbeat_keeps_the_worker_and_its_leases_alive(store: Store) -> None:
    await account_with_tasks(store, 2)
    await store.write(lambda tx: leases.register_worker(tx, worker("w1", expires_in=1)))
    claims = await claim(store, "w1", 2, lease_s=1)
    later = time.time() + 0.5
    held = await store.write(lambda tx: leases.heartbeat(tx, "w1", later, 30))
    assert held is not None
    assert sorted((h.task_id, h.attempt) for h in held) == sorted((c.task.id, 1) for c in claims)
    assert all(h.lease_expires_at == pytest.approx(later + 30) for h in held)
    # Past the original lease, nothing expires: the heartbeat moved it.
    assert await store.write(lambda tx: leases.requeue_expired_leases(tx, time.time() + 5, 3, 10)) == []
    live = await store.read(lambda r: leases.live_workers(r, time.time() + 5))
    assert [w.id for w in live] == ["w1"]
    assert await store.write(lambda tx: leases.heartbeat(tx, "nobody", time.time(), 30)) is None


async def test_expired_leases_go_back_until_attempts_run_out(store: Store) -> None:
    await account_with_tasks(store, 1)
    for attempt in (1, 2):
        (c,) = await claim(store, f"w{attempt}", 1, lease_s=0.01)
        assert c.attempt == attempt
        assert await store.write(lambda tx: leases.requeue_expired_leases(tx, time.time() + 1, 3, 10)) == [c.task.id]
    (last,) = await claim(store, "w3", 1, lease_s=0.01)
    assert last.attempt == 3
    # The last attempt's lease expires: not requeued, but reported for rejection, with its fence.
    assert await store.write(lambda tx: leases.requeue_expired_leases(tx, time.time() + 1, 3, 10)) == []
    (exhausted,) = await store.read(lambda r: leases.exhausted_leases(r, time.time() + 1, 3, 10))
    assert (exhausted.task.id, exhausted.lease_owner, exhausted.attempt) == (last.task.id, "w3", 3)


async def test_deregistering_requeues_what_the_worker_held(store: Store) -> None:
    await account_with_tasks(store, 3)
    await store.write(lambda tx: leases.register_worker(tx, worker("w1")))
    held = await claim(store, "w1", 2)
    requeued = await store.write(lambda tx: leases.deregister_worker(tx, "w1"))
    assert sorted(requeued) == sorted(c.task.id for c in held)
    assert await store.read(lambda r: leases.get_worker(r, "w1")) is None
    again = await claim(store, "w2", 10)
    assert len(again) == 3
    assert {c.attempt for c in again if c.task.id in requeued} == {2}


async def test_registry_lists_live_workers_and_forgets_dead_ones(store: Store) -> None:
    for w in (worker("alive"), worker("remote", WorkerKind.REMOTE, types=("cf-clearance",)),
              worker("dead", expires_in=-10)):
        await store.write(lambda tx, w=w: leases.register_worker(tx, w))
    live = await store.read(lambda r: leases.live_workers(r, time.time()))
    assert {(w.id, w.kind, w.types) for w in live} == {
        ("alive", WorkerKind.BUILTIN, ("turnstile",)), ("remote", WorkerKind.REMOTE, ("cf-clearance",))
    }
    # Registering again replaces the old row (a restarted worker under the same id).
    await store.write(lambda tx: leases.register_worker(tx, worker("alive", types=("altcha",))))
    got = await store.read(lambda r: leases.get_worker(r, "alive"))
    assert got is not None and got.types == ("altcha",)
    assert await store.write(lambda tx: leases.purge_dead_workers(tx, time.time() - 5)) == 1
    assert await store.read(lambda r: leases.get_worker(r, "dead")) is None


async def test_overdue_tasks_are_found_for_the_reaper(store: Store) -> None:
    await account_with_tasks(store, 2)
    assert await store.write(lambda tx: tx.overdue_task_ids(time.time(), 10)) == []
    assert len(await store.write(lambda tx: tx.overdue_task_ids(time.time() + 301, 10))) == 2


async def test_holds_never_overspend_under_concurrent_creates(store: Store, second_store: Store) -> None:
    account_id = await account_with_tasks(store, 0, balance=5 * PRICE)
    at = time.time()

    async def create(s: Store) -> bool:
        task_id = new_id()

        def work(tx: Writer) -> bool:
            if not tx.hold(account_id, task_id, PRICE, at):
                return False
            tx.insert_task(task_id=task_id, account_id=account_id, task_type="turnstile", params={}, price=PRICE,
                           now=at, deadline_at=at + 60)
            return True

        return await s.write(work)

    results = await asyncio.gather(*(create(s) for _ in range(10) for s in (store, second_store)))
    assert sum(results) == 5
    balance = await store.read(lambda r: r.get_balance(account_id))
    assert balance is not None and (balance.available, balance.held) == (0, 5 * PRICE)
    await assert_ledger_matches_balances(store)


async def test_a_second_capture_is_refused_by_the_ledger(store: Store) -> None:
    await account_with_tasks(store, 1)
    (c,) = await claim(store, "w", 1)
    (done,) = await complete(store, [c])
    from cracker.store.sql import IntegrityError

    with pytest.raises(IntegrityError):
        await store.write(lambda tx: tx.settle(done, capture=True, now=time.time()))
    await assert_ledger_matches_balances(store)


