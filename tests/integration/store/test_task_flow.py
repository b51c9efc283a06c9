"""The per-task operations through the service, on SQLite and PostgreSQL: both must leave exactly
the same rows, money and answers behind."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

import pytest

from cracker.domain.clock import new_id
from cracker.domain.errors import InsufficientBalance, InvalidRequest, NotFound, ServiceUnavailable
from cracker.domain.tasks import TaskStatus
from cracker.domain.workers import Completion
from cracker.metrics import Metrics
from cracker.service.events import Notifier
from cracker.service.offers import OfferService
from cracker.service.tasks import TaskService
from cracker.store import Store, Writer, open_store
from cracker.store.schema import idempotency_keys, webhook_deliveries

PRICE = 9


class EveryTypeServed:
    """The solving side as the service sees it: here, everything can be served by a built-in."""

    def can_serve(self, task_type: str, params: Mapping[str, Any]) -> bool:
        return True

    def pool_only(self, task_type: str, params: Mapping[str, Any]) -> bool:
        return False


def service_over(store: Store) -> TaskService:
    return TaskService(store, OfferService(store), EveryTypeServed(), Notifier(), Metrics(), task_timeout_s=300)


@pytest.fixture
async def tasks(store: Store) -> TaskService:
    await store.write(lambda tx: tx.upsert_offer("turnstile", PRICE, True, time.time()))
    return service_over(store)


@pytest.fixture
def second_tasks(second_store: Store) -> TaskService:
    return service_over(second_store)


async def new_account(store: Store, balance: int) -> str:
    account_id = new_id()

    def work(tx: Writer) -> None:
        tx.insert_account(account_id, "flow", time.time())
        tx.top_up(account_id, balance, time.time())

    await store.write(work)
    return account_id


async def balances_match_ledger(store: Store) -> None:
    assert await store.read(lambda r: r.ledger_totals()) == await store.read(lambda r: r.account_balances())


async def test_create_claim_complete_poll(store: Store, tasks: TaskService) -> None:
    account = await new_account(store, 100)
    created = (await tasks.create(account, "turnstile", {"site_key": "k"}, callback_url="https://example.com/h")).task
    assert created.status is TaskStatus.PENDING and created.price == PRICE and created.attempts == 0
    stored = await store.read(lambda r: r.get_task(created.id))
    assert stored == created  # what create answers is what it wrote
    assert (await tasks.get(account, created.id)).status is TaskStatus.PENDING

    (claim,) = await tasks.claim(["turnstile"], "w1", 5, 30)
    assert claim.task.id == created.id and claim.attempt == 1 and claim.task.status is TaskStatus.RUNNING
    assert await tasks.claim(["turnstile"], "w2", 5, 30) == []

    (done,) = await tasks.complete_many([Completion(created.id, "w1", 1, {"token": "t", "big": 2**70})])
    assert done is not None and done.status is TaskStatus.COMPLETED and done.cost == PRICE
    view = await tasks.get(account, created.id)
    assert view.status is TaskStatus.COMPLETED and view.solution == {"token": "t", "big": 2**70}
    balance = await store.read(lambda r: r.get_balance(account))
    assert balance is not None and (balance.available, balance.held) == (100 - PRICE, 0)
    outbox = await store.read(lambda r: r.conn.execute(webhook_deliveries.select()).all())
    assert [(d.task_id, d.url, d.status) for d in outbox] == [(created.id, "https://example.com/h", "pending")]
    await balances_match_ledger(store)


async def test_a_completion_under_a_lost_lease_changes_nothing(store: Store, tasks: TaskService) -> None:
    account = await new_account(store, 100)
    first = (await tasks.create(account, "turnstile", {})).task
    second = (await tasks.create(account, "turnstile", {})).task
    claims = {c.task.id: c for c in await tasks.claim(["turnstile"], "w1", 5, 30)}
    results = await tasks.complete_many([
        Completion(first.id, "w1", claims[first.id].attempt, {"token": "ok"}),
        Completion(second.id, "someone-else", claims[second.id].attempt, {"token": "late"}),
        Completion(second.id, "w1", claims[second.id].attempt + 1, {"token": "stale"}),
    ])
    assert [r.id if r else None for r in results] == [first.id, None, None]
    assert (await tasks.get(account, second.id)).status is TaskStatus.RUNNING
    balance = await store.read(lambda r: r.get_balance(account))
    assert balance is not None and (balance.available, balance.held) == (100 - 2 * PRICE, PRICE)
    await balances_match_ledger(store)


async def test_a_short_balance_refuses_and_leaves_nothing(store: Store, tasks: TaskService) -> None:
    account = await new_account(store, PRICE - 1)
    with pytest.raises(InsufficientBalance):
        await tasks.create(account, "turnstile", {}, idempotency_key="k1")
    assert not tasks.notifier._unfinished  # nothing is believed live
    assert await tasks.claim(["turnstile"], "w", 5, 30) == []
    keys = await store.read(lambda r: r.conn.execute(idempotency_keys.select()).all())
    assert keys == []
    await balances_match_ledger(store)


async def test_concurrent_creates_never_overspend(
    store: Store, tasks: TaskService, second_tasks: TaskService
) -> None:
    account = await new_account(store, 5 * PRICE)

    async def create(service: TaskService) -> bool:
        try:
            await service.create(account, "turnstile", {})
        except InsufficientBalance:
            return False
        return True

    results = await asyncio.gather(*(create(s) for _ in range(10) for s in (tasks, second_tasks)))
    assert sum(results) == 5
    balance = await store.read(lambda r: r.get_balance(account))
    assert balance is not None and (balance.available, balance.held) == (0, 5 * PRICE)
    await balances_match_ledger(store)


async def test_idempotency_keys_on_every_path(store: Store, tasks: TaskService, second_tasks: TaskService) -> None:
    account = await new_account(store, 100 * PRICE)
    first = await tasks.create(account, "turnstile", {"a": 1}, idempotency_key="same")
    again = await second_tasks.create(account, "turnstile", {"a": 1}, idempotency_key="same")
    assert again.replayed and again.task.id == first.task.id
    with pytest.raises(InvalidRequest):
        await tasks.create(account, "turnstile", {"a": 2}, idempotency_key="same")

    # Racing creates with one key: one task, one charge.
    racing = await asyncio.gather(*(
        service.create(account, "turnstile", {"b": 1}, idempotency_key="race")
        for _ in range(5) for service in (tasks, second_tasks)
    ))
    assert len({c.task.id for c in racing}) == 1 and sum(not c.replayed for c in racing) == 1

    # An expired key that the purge has not reached yet is replaced, not an error.
    def age(tx: Writer) -> None:
        tx.conn.execute(idempotency_keys.update().where(idempotency_keys.c.key == "same").values(created_at=0.0))

    await store.write(age)
    renewed = await tasks.create(account, "turnstile", {"a": 1}, idempotency_key="same")
    assert not renewed.replayed and renewed.task.id != first.task.id
    balance = await store.read(lambda r: r.get_balance(account))
    assert balance is not None and balance.held == 3 * PRICE
    await balances_match_ledger(store)


async def test_concurrent_completion_batches_share_accounts_without_deadlock(
    store: Store, tasks: TaskService, second_tasks: TaskService
) -> None:
    accounts = [await new_account(store, 1000 * PRICE) for _ in range(4)]
    for index in range(80):
        await tasks.create(accounts[index % 4], "turnstile", {"i": index})
    claims = await tasks.claim(["turnstile"], "w1", 80, 30)
    assert len(claims) == 80
    completions = [Completion(c.task.id, "w1", c.attempt, {"token": "t"}) for c in claims]
    # Many batches from two stores at once, each batch touching every account in another order.
    batches = [completions[i::8] for i in range(8)]
    results = await asyncio.gather(*(
        (tasks if i % 2 else second_tasks).complete_many(list(reversed(b)) if i % 3 else b)
        for i, b in enumerate(batches)
    ))
    assert sum(r is not None for batch in results for r in batch) == 80
    for account in accounts:
        balance = await store.read(lambda r, a=account: r.get_balance(a))
        assert balance is not None and balance.held == 0 and balance.available == 1000 * PRICE - 20 * PRICE
    deliveries = await store.read(lambda r: r.conn.execute(webhook_deliveries.select()).all())
    assert deliveries == []  # no callback asked for, no outbox row
    await balances_match_ledger(store)


async def test_long_poll_of_a_task_created_here(store: Store, tasks: TaskService) -> None:
    account = await new_account(store, 100)
    task = (await tasks.create(account, "turnstile", {})).task
    assert tasks.notifier.known_unfinished(task.id, account)
    assert not tasks.notifier.known_unfinished(task.id, "another-account")
    # Known live, so no first read; still answered as it is once the wait is over.
    assert (await tasks.wait(account, task.id, 0.05)).status is TaskStatus.PENDING
    waiting = asyncio.create_task(tasks.wait(account, task.id, 10))
    await asyncio.sleep(0.05)
    (claim,) = await tasks.claim(["turnstile"], "w1", 1, 30)
    await tasks.complete_many([Completion(task.id, "w1", claim.attempt, {"token": "t"})])
    view = await asyncio.wait_for(waiting, 2)
    assert view.status is TaskStatus.COMPLETED and not tasks.notifier.known_unfinished(task.id, account)
    # Another account asking about it is told it does not exist, known live or not.
    with pytest.raises(NotFound):
        await tasks.wait("another-account", task.id, 0.05)


def test_the_notifier_forgets_what_it_cannot_vouch_for() -> None:
    notifier = Notifier()
    notifier.created_here("t1", "a")
    notifier.created_here("t2", "a")
    notifier.created_here("t3", "a")
    notifier.task_finished("t1")
    notifier.not_created("t3")
    assert not notifier.known_unfinished("t1", "a") and notifier.known_unfinished("t2", "a")
    assert not notifier.known_unfinished("t3", "a")
    notifier.forget_unfinished()  # a lost connection: ends may have gone unheard
    assert not notifier.known_unfinished("t2", "a")


async def test_an_unreachable_postgresql_is_service_unavailable() -> None:
    store = open_store("postgresql://postgres@127.0.0.1:1/nowhere")
    try:
        with pytest.raises(ServiceUnavailable):
            await store.get_task_view(new_id())
        with pytest.raises(ServiceUnavailable):
            await store.claim_tasks(["turnstile"], "w", 1, 30, time.time(), builtin_only=True)
        with pytest.raises(ServiceUnavailable):
            await store.get_offer_price("turnstile")
    finally:
        await store.close()
