"""The queue, on both stores: claim order and batches, who may claim what, disjoint concurrent
claims, fenced completions, leases, the worker registry and deadlines."""

from __future__ import annotations

import asyncio
import time

import pytest

from cracker.domain.tasks import TaskStatus
from cracker.domain.workers import Completion, WorkerInfo, WorkerKind
from cracker.store import Rejection, Store, leases

from .helpers import PRICE, TYPE, assert_books_balance, balance, claim, complete, create_tasks, new_account


async def test_claims_oldest_first_in_batches(store: Store) -> None:
    account = await new_account(store)
    await create_tasks(store, account, 5)
    first = await claim(store, "w1", 3)
    assert [c.task.params["i"] for c in first] == [0, 1, 2]
    assert all(c.attempt == 1 and c.lease_owner == "w1" for c in first)
    assert all(c.task.status is TaskStatus.RUNNING and c.task.lease_owner == "w1" for c in first)
    assert all(c.task.started_at is not None for c in first)
    assert [c.task.params["i"] for c in await claim(store, "w2", 10)] == [3, 4]
    assert await claim(store, "w3", 10) == []


async def test_a_claim_takes_only_the_types_asked_for_and_nothing_when_asked_for_nothing(store: Store) -> None:
    account = await new_account(store)
    await create_tasks(store, account, 2)
    assert await store.claim_tasks(["altcha"], "w", 10, 30, time.time()) == []
    assert await store.claim_tasks([], "w", 10, 30, time.time()) == []
    assert await store.claim_tasks([TYPE], "w", 0, 30, time.time()) == []
    assert len(await store.claim_tasks(["altcha", TYPE], "w", 10, 30, time.time())) == 2


async def test_builtin_claims_skip_tasks_only_a_pool_can_solve(store: Store) -> None:
    account = await new_account(store)
    await create_tasks(store, account, 2, pool_only=True)
    (builtin,) = await create_tasks(store, account, 1)
    assert [c.task.id for c in await claim(store, "builtin", 10, builtin_only=True)] == [builtin.id]
    assert len(await claim(store, "pool", 10)) == 2


async def test_concurrent_claimers_never_share_a_task(store: Store, second_store: Store) -> None:
    account = await new_account(store)
    await create_tasks(store, account, 60)
    rounds = await asyncio.gather(*(claim(s, f"w{i}", 4) for i in range(12) for s in (store, second_store)))
    claimed = [c.task.id for batch in rounds for c in batch]
    assert len(claimed) == len(set(claimed))
    assert all(len(batch) <= 4 for batch in rounds)
    rest = await claim(store, "last", 100)
    assert len(claimed) + len(rest) == 60


async def test_completion_is_fenced_by_the_lease(store: Store) -> None:
    account = await new_account(store, 100)
    await create_tasks(store, account, 1)
    (stale,) = await claim(store, "w1", 1, lease_s=0.01)
    requeued = await store.write(lambda tx: leases.requeue_expired_leases(tx, time.time() + 1, 3, 10))
    assert requeued == [stale.task.id]
    (fresh,) = await claim(store, "w2", 1)
    assert fresh.attempt == 2
    assert await complete(store, [stale]) == []  # the old owner's result is dropped
    assert await complete(store, [fresh], owner="w1") == []  # the right attempt, the wrong owner
    assert (await store.get_task(fresh.task.id)).status is TaskStatus.RUNNING  # type: ignore[union-attr]
    (done,) = await complete(store, [fresh])
    assert done.status is TaskStatus.COMPLETED and done.cost == PRICE and done.solution == {"token": "t"}
    assert done.lease_owner is None and done.completed_at is not None
    assert await complete(store, [fresh]) == []  # never twice
    assert await balance(store, account) == (100 - PRICE, 0)
    await assert_books_balance(store)


async def test_a_worker_holding_a_task_again_cannot_complete_its_earlier_attempt(store: Store) -> None:
    account = await new_account(store, 100)
    await create_tasks(store, account, 1)
    (first,) = await claim(store, "w1", 1, lease_s=0.01)
    await store.write(lambda tx: leases.requeue_expired_leases(tx, time.time() + 1, 3, 10))
    (second,) = await claim(store, "w1", 1)
    assert (second.lease_owner, second.attempt) == ("w1", 2)
    assert await complete(store, [first]) == []  # the same owner, the lost attempt
    (done,) = await complete(store, [second])
    assert done.attempts == 2
    await assert_books_balance(store)


async def test_a_batch_completes_only_the_items_whose_lease_holds(store: Store) -> None:
    account = await new_account(store, 100)
    await create_tasks(store, account, 3)
    claims = await claim(store, "w1", 3)
    done = await complete(store, [claims[0], claims[2]])
    assert sorted(t.id for t in done) == sorted([claims[0].task.id, claims[2].task.id])
    # The first is already done (dropped), the second still leased (completed).
    assert [t.id for t in await complete(store, [claims[0], claims[1]])] == [claims[1].task.id]
    assert await balance(store, account) == (100 - 3 * PRICE, 0)
    await assert_books_balance(store)


async def test_a_fenced_rejection_needs_the_lease_and_an_unfenced_one_any_live_task(store: Store) -> None:
    account = await new_account(store, 100)
    pending, running = await create_tasks(store, account, 2)
    (lease,) = await claim(store, "w1", 1)
    assert lease.task.id == pending.id
    lost = Rejection("general_error", "lost", charged=False)
    assert await store.reject_task(lease.task.id, lost, time.time(), fence=("w2", lease.attempt)) is None
    assert await store.reject_task(lease.task.id, lost, time.time(), fence=("w1", lease.attempt + 1)) is None
    ended = await store.reject_task(lease.task.id, lost, time.time(), fence=("w1", lease.attempt))
    assert ended is not None and ended.status is TaskStatus.REJECTED and ended.error_code == "general_error"
    cancelled = await store.reject_task(running.id, Rejection("cancelled", "by the client", False), time.time())
    assert cancelled is not None and cancelled.error_message == "by the client" and cancelled.cost == 0
    assert await store.reject_task(running.id, lost, time.time()) is None  # terminal: left as is
    await assert_books_balance(store)


def worker(worker_id: str, kind: WorkerKind = WorkerKind.BUILTIN, *, expires_in: float = 10,
           types: tuple[str, ...] = (TYPE,)) -> WorkerInfo:
    at = time.time()
    return WorkerInfo(id=worker_id, kind=kind, account_id=None, name="n", types=types, concurrency=2,
                      started_at=at, heartbeat_at=at, expires_at=at + expires_in)


async def test_heartbeat_keeps_the_worker_and_its_leases_alive(store: Store) -> None:
    account = await new_account(store)
    await create_tasks(store, account, 2)
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
    account = await new_account(store)
    await create_tasks(store, account, 1)
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


async def test_requeue_takes_at_most_its_limit(store: Store) -> None:
    account = await new_account(store)
    await create_tasks(store, account, 5)
    await claim(store, "w1", 5, lease_s=0.01)
    first = await store.write(lambda tx: leases.requeue_expired_leases(tx, time.time() + 1, 3, 2))
    assert len(first) == 2
    rest = await store.write(lambda tx: leases.requeue_expired_leases(tx, time.time() + 1, 3, 10))
    assert len(rest) == 3 and not set(first) & set(rest)


async def test_deregistering_requeues_what_the_worker_held(store: Store) -> None:
    account = await new_account(store)
    await create_tasks(store, account, 3)
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
        ("alive", WorkerKind.BUILTIN, (TYPE,)), ("remote", WorkerKind.REMOTE, ("cf-clearance",))
    }
    # Registering again replaces the old row (a restarted worker under the same id).
    await store.write(lambda tx: leases.register_worker(tx, worker("alive", types=("altcha",))))
    got = await store.read(lambda r: leases.get_worker(r, "alive"))
    assert got is not None and got.types == ("altcha",)
    assert await store.write(lambda tx: leases.purge_dead_workers(tx, time.time() - 5)) == 1
    assert await store.read(lambda r: leases.get_worker(r, "dead")) is None


async def test_overdue_tasks_are_rejected_once_with_their_hold_released(store: Store, second_store: Store) -> None:
    account = await new_account(store, 100)
    pending, running, done = await create_tasks(store, account, 3)
    claims = await claim(store, "w1", 2)
    await complete(store, [c for c in claims if c.task.id == running.id])
    timeout = Rejection("solve_timeout", "late", charged=False)
    assert await store.reject_overdue(timeout, time.time(), 10) == []  # none is due yet
    # Two reapers at once (two processes): each overdue task ends once.
    later = time.time() + 301
    first, second = await asyncio.gather(
        store.reject_overdue(timeout, later, 10), second_store.reject_overdue(timeout, later, 10)
    )
    ended = [t.id for t in first + second]
    assert sorted(ended) == sorted([pending.id, done.id])
    assert all(t.status is TaskStatus.REJECTED and t.error_code == "solve_timeout" for t in first + second)
    assert await store.reject_overdue(timeout, later, 10) == []
    assert await balance(store, account) == (100 - PRICE, 0)
    await assert_books_balance(store)


async def test_the_poll_reads_what_the_operations_wrote(store: Store) -> None:
    account = await new_account(store)
    (task,) = await create_tasks(store, account, 1)
    view = await store.get_task_view(task.id)
    assert view is not None and (view.status, view.account_id, view.cost) == (TaskStatus.PENDING, account, None)
    (lease,) = await claim(store, "w", 1)
    solution = {"token": "t", "big": 2**70}
    await store.complete_tasks([Completion(lease.task.id, "w", lease.attempt, solution)], time.time())
    view = await store.get_task_view(task.id)
    assert view is not None and view.status is TaskStatus.COMPLETED and view.cost == PRICE
    assert view.solution == {"token": "t", "big": 2**70} and view.started_at is not None
    assert await store.get_task_view("no-such-task") is None

