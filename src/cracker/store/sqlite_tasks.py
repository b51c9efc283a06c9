"""The per-task operations on SQLite, as units of work over a ``Writer``.

SQLite statements are in-process calls (microseconds each), so each operation is composed from
a few plain statements in one ``BEGIN IMMEDIATE`` transaction on the writer thread; the write lock
taken up front excludes every other writer, so no row locking is needed.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert, select

from cracker.domain.clock import new_id
from cracker.domain.tasks import ClaimedTask, Task, TaskStatus
from cracker.domain.workers import Completion
from cracker.store import idempotency, sqlite_sql, webhooks
from cracker.store.interface import NewTask, Rejection
from cracker.store.rows import dumps, task_from_row
from cracker.store.schema import tasks
from cracker.store.units import LIVE, Writer

_PENDING = TaskStatus.PENDING.value

_INSERT_TASK = insert(tasks).returning(tasks)


def create(tx: Writer, new: NewTask) -> Task | None:
    """Hold the price (with its ledger row) and insert the task; None when the balance is short.

    On SQLite on the driver (sqlite_sql.INSERT_TASK numbers the task); PostgreSQL's batch create runs
    the Core statement here, its number from a sequence (0012)."""
    if not tx.hold(new.account_id, new.task_id, new.price, new.created_at):
        return None
    values = {
        "id": new.task_id, "account_id": new.account_id, "type": new.type, "status": _PENDING,
        "params": dumps(new.params), "price": new.price, "created_at": new.created_at,
        "deadline_at": new.deadline_at, "callback_url": new.callback_url, "pool_only": new.pool_only,
    }
    driver = tx.sqlite_driver
    if driver is not None:
        driver.execute(sqlite_sql.INSERT_TASK, {**values, "floor": int(new.created_at * 1000)})
        task = Task(
            id=new.task_id, account_id=new.account_id, type=new.type, status=TaskStatus.PENDING,
            params=new.params, solution=None, error_code=None, error_message=None, price=new.price, cost=None,
            created_at=new.created_at, started_at=None, completed_at=None, deadline_at=new.deadline_at,
            lease_owner=None, attempts=0, callback_url=new.callback_url,
        )
    else:
        task = task_from_row(tx.conn.execute(_INSERT_TASK, {**values, "attempts": 0}).one())
    key = new.idempotency
    if key is not None:
        # A live key of the same name fails this insert on the primary key: the transaction rolls
        # back, hold and task with it.
        idempotency.remember_key(
            tx, new.account_id, key.key, key.request_hash, new.task_id, new.created_at, key.expired_before
        )
    return task


def claim(
    tx: Writer, types: Sequence[str], owner: str, limit: int, lease_s: float, now: float, builtin_only: bool,
    max_running: int, accounts: Sequence[str] | None = None,
) -> list[ClaimedTask]:
    driver = _driver(tx)
    query = sqlite_sql.candidates(len(types), len(accounts or ()), builtin_only)
    rows = driver.execute(query, (*types, accounts is None, *(accounts or ()), limit)).fetchall()
    # The running tasks per account rank the candidates; with no cap and one account's candidates
    # the order is that account's oldest first whatever they are, so they need not be counted.
    running: Counter[str] = Counter()
    if max_running or len({row[0] for row in rows}) > 1:
        running.update(row[0] for row in driver.execute(sqlite_sql.running_accounts(len(types)), tuple(types)))
    # (rank, created_at, id), the rank counted after the account's running tasks (see pg_sql.CLAIM):
    # sorted, the task of the account with the fewest in flight comes first, then the oldest.
    candidates: list[tuple[int, float, str]] = []
    rank, account = 0, None
    for account_id, created_at, task_id in rows:
        rank = rank + 1 if account_id == account else running[account_id] + 1
        account = account_id
        if not max_running or rank <= max_running:
            candidates.append((rank, created_at, task_id))
    picked = [task_id for _rank, _created, task_id in sorted(candidates)[:limit]]
    if not picked:
        return []
    rows = driver.execute(sqlite_sql.take(len(picked)), (owner, now + lease_s, now, *picked)).fetchall()
    claimed = sorted((task_from_row(r) for r in rows), key=lambda t: t.created_at)  # RETURNING has no order
    return [ClaimedTask(task=t, lease_owner=owner, attempt=t.attempts) for t in claimed]


def _driver(tx: Writer) -> sqlite3.Connection:
    driver = tx.sqlite_driver
    if driver is None:
        raise TypeError("the SQLite task operations need the SQLite store's writer")
    return driver


def _end(
    tx: Writer, task_id: str, status: TaskStatus, now: float, *, capture: bool, fence: tuple[str, int] | None,
    solution: dict[str, Any] | None = None, error_code: str | None = None, error_message: str | None = None,
) -> Task | None:
    """End a live task and settle it: the one place on SQLite where a task ends.

    The task row turns terminal (fenced by its lease when ``fence`` is given), its hold is captured
    or released with the ledger row, and a task with a callback gets its webhook outbox row, all
    in the caller's transaction. None, and nothing written, when the task was not live or the
    fence failed.
    """
    owner, attempt = fence if fence is not None else (None, None)
    row = _driver(tx).execute(sqlite_sql.FINISH[(fence is not None, capture)], {
        "id": task_id, "owner": owner, "attempt": attempt, "status": status.value,
        "solution": dumps(solution) if solution is not None else None, "error_code": error_code,
        "error_message": error_message, "now": now,
    }).fetchone()
    if row is None:
        return None
    task = task_from_row(row)
    tx.settle(task, capture=capture, now=now)
    if task.callback_url is not None:
        webhooks.enqueue_delivery(tx, new_id(), task.id, task.account_id, task.callback_url, now)
    return task


def complete(tx: Writer, items: Sequence[Completion], now: float) -> list[Task]:
    done = []
    for item in items:
        task = _end(
            tx, item.task_id, TaskStatus.COMPLETED, now, capture=True, fence=(item.lease_owner, item.attempt),
            solution=item.solution,
        )
        if task is not None:
            done.append(task)
    return done


def reject(tx: Writer, task_id: str, rejection: Rejection, now: float, fence: tuple[str, int] | None) -> Task | None:
    return _end(
        tx, task_id, TaskStatus.REJECTED, now, capture=rejection.charged, fence=fence,
        error_code=rejection.code, error_message=rejection.message,
    )


def reject_overdue(tx: Writer, rejection: Rejection, now: float, limit: int) -> list[Task]:
    overdue = tx.conn.execute(
        select(tasks.c.id)
        .where(tasks.c.status.in_(LIVE), tasks.c.deadline_at < now)
        .order_by(tasks.c.deadline_at)
        .limit(limit)
    )
    ended = [reject(tx, row.id, rejection, now, None) for row in overdue.all()]
    return [task for task in ended if task is not None]
