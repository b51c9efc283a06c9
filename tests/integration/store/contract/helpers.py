"""What the contract tests share: accounts, tasks and checks, through the store's public interface."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import delete, event

from cracker.domain.clock import new_id
from cracker.domain.tasks import ClaimedTask, Task
from cracker.domain.workers import Completion
from cracker.store import IdempotencyKey, NewTask, Store, Writer, audit, schema

PRICE = 9
TYPE = "turnstile"
_TABLES = [
    schema.dashboard_sessions, schema.queue_samples,
    schema.task_events, schema.pool_grants,
    schema.ledger, schema.webhook_attempts, schema.webhook_deliveries, schema.idempotency_keys, schema.tasks,
    schema.workers, schema.api_keys, schema.accounts,
]


async def empty(store: Store) -> None:
    """No tasks, no accounts, no workers (offers kept)."""

    def work(tx: Writer) -> None:
        for table in _TABLES:
            tx.conn.execute(delete(table))

    await store.write(work)


async def new_account(store: Store, balance: int = 10_000) -> str:
    account_id = new_id()
    at = time.time()

    def work(tx: Writer) -> None:
        tx.insert_account(account_id, "contract", at)
        if balance:
            tx.top_up(account_id, balance, at)

    await store.write(work)
    return account_id


def new_task(
    account_id: str, *, at: float | None = None, price: int = PRICE, params: dict[str, Any] | None = None,
    callback_url: str | None = None, pool_only: bool = False, key: str | None = None, request_hash: str = "h",
    deadline_in: float = 300,
) -> NewTask:
    created = time.time() if at is None else at
    idempotency = IdempotencyKey(key, request_hash, expired_before=created - 3600) if key is not None else None
    return NewTask(
        task_id=new_id(), account_id=account_id, type=TYPE, params=params or {}, price=price, created_at=created,
        deadline_at=created + deadline_in, callback_url=callback_url, pool_only=pool_only, idempotency=idempotency,
    )


async def create_tasks(
    store: Store, account_id: str, count: int, *, pool_only: bool = False, callback_url: str | None = None
) -> list[Task]:
    """``count`` tasks, created 1 ms apart (so that claim order is defined), params ``{"i": index}``."""
    start = time.time()
    created = []
    for i in range(count):
        task = await store.create_task(
            new_task(account_id, at=start + i * 0.001, params={"i": i}, pool_only=pool_only, callback_url=callback_url)
        )
        assert task is not None
        created.append(task)
    return created


async def claim(
    store: Store, owner: str, limit: int, *, lease_s: float = 30, at: float | None = None, builtin_only: bool = False
) -> list[ClaimedTask]:
    when = time.time() if at is None else at
    return await store.claim_tasks([TYPE], owner, limit, lease_s, when, builtin_only=builtin_only)


async def complete(store: Store, claims: list[ClaimedTask], owner: str | None = None) -> list[Task]:
    items = [Completion(c.task.id, owner or c.lease_owner, c.attempt, {"token": "t"}) for c in claims]
    return await store.complete_tasks(items, time.time())


async def balance(store: Store, account_id: str) -> tuple[int, int]:
    """(available, held)."""
    got = await store.read(lambda r: r.get_balance(account_id))
    assert got is not None
    return got.available, got.held


async def assert_books_balance(store: Store) -> None:
    """The balance columns are the ledger's projection, never negative, and every task's money
    moved exactly as its state says (one hold; one capture or release once it ended, none before)."""
    totals = await store.read(lambda r: r.ledger_totals())
    balances = await store.read(lambda r: r.account_balances())
    assert {a: totals.get(a, (0, 0)) for a in balances} == balances
    assert all(available >= 0 and held >= 0 for available, held in balances.values())
    report = await store.read(audit.audit_ledger)
    assert (
        report.bad_holds, report.captured_twice, report.released_twice, report.captured_and_released,
        report.completed_not_captured, report.terminal_not_settled, report.live_but_settled,
        report.refunded_twice, report.refunded_not_captured, report.refund_over_capture,
    ) == (0, 0, 0, 0, 0, 0, 0, 0, 0, 0), report


async def delivery_pick_statements(store: Store, pick: Callable[[Writer], object]) -> list[str]:
    """The SQL that writes webhook deliveries while ``pick`` runs in one transaction, recorded on that
    transaction's connection only (other apps of the test session run their own dispatchers)."""
    statements: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if "webhook_deliveries" in statement and statement.lstrip().upper().startswith(("UPDATE", "WITH")):
            statements.append(statement)

    def run(tx: Writer) -> object:
        event.listen(tx.conn, "before_cursor_execute", record)
        try:
            return pick(tx)
        finally:
            event.remove(tx.conn, "before_cursor_execute", record)

    await store.write(run)
    return statements
