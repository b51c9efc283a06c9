"""The per-task operations on SQLite, as units of work over a ``Writer``.

SQLite statements are in-process calls (microseconds each), so each operation is composed from
a few plain statements in one ``BEGIN IMMEDIATE`` transaction on the writer thread; the write lock
taken up front excludes every other writer, so no row locking is needed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, bindparam, func, insert, select, text, update

from cracker.domain.clock import new_id
from cracker.domain.tasks import ClaimedTask, Task, TaskStatus
from cracker.domain.workers import Completion
from cracker.store import idempotency, webhooks
from cracker.store.interface import NewTask, Rejection
from cracker.store.rows import dumps, task_from_row
from cracker.store.schema import tasks
from cracker.store.units import LIVE, Writer

_PENDING, _RUNNING = TaskStatus.PENDING.value, TaskStatus.RUNNING.value

_INSERT_TASK = insert(tasks).returning(tasks)
# SQLite has no sequences: the next number is one past the highest (one writer, so no race), and
# never below the creation time in milliseconds, so numbers freed by the retention purge of the
# newest tasks are not handed out again (a client's old number never names another task).
# PostgreSQL's column defaults to a sequence instead (0012).
_INSERT_NUMBERED_TASK = (
    insert(tasks)
    .values(number=select(func.max(func.coalesce(func.max(tasks.c.number), 0) + 1, bindparam("p_floor")))
            .scalar_subquery())
    .returning(tasks)
)


# The fair claim's candidates, one statement: the accounts that have pending tasks, one index
# probe each (a skip scan of ix_tasks_pending_account), and each one's oldest matching tasks, no
# more than the claim's limit. Reads are bounded by accounts x limit, never by a backlog's size;
# the ranks and the cap are applied by ``claim`` (see pg_sql.CLAIM for the order). INDEXED BY:
# without statistics (no ANALYZE) SQLite's planner took ix_tasks_deadline for `status = ?` and
# sorted every pending row by account, per claim: 0.9 ms at 400 pending, growing with the backlog;
# with the index named, 0.08 ms, flat (bench/create_profile.py found it).
_CANDIDATES_SQL = f"""
WITH RECURSIVE owners(account_id) AS (
    SELECT (SELECT account_id FROM tasks INDEXED BY ix_tasks_pending_account
            WHERE status = '{_PENDING}' ORDER BY account_id LIMIT 1)
    UNION ALL
    SELECT (SELECT t.account_id FROM tasks t INDEXED BY ix_tasks_pending_account
            WHERE t.status = '{_PENDING}' AND t.account_id > o.account_id ORDER BY t.account_id LIMIT 1)
    FROM owners o WHERE o.account_id IS NOT NULL
)
SELECT c.account_id, c.created_at, c.id FROM owners o JOIN tasks c ON c.id IN (
    SELECT x.id FROM tasks x INDEXED BY ix_tasks_pending_account
    WHERE x.account_id = o.account_id AND x.status = '{_PENDING}' AND x.type IN :p_types {{builtin}}
      AND (:p_any_account OR x.account_id IN :p_accounts)
    ORDER BY x.created_at LIMIT :p_limit
)
ORDER BY c.account_id, c.created_at
"""  # noqa: S608 - only this module's constants are formatted in; values are bind parameters
_CANDIDATES = {
    builtin_only: text(_CANDIDATES_SQL.format(builtin="AND NOT x.pool_only" if builtin_only else ""))
    .bindparams(bindparam("p_types", expanding=True), bindparam("p_accounts", expanding=True))
    for builtin_only in (False, True)
}
# Counted here, not by GROUP BY: SQLite would read the whole table in account order
# (ix_tasks_account) to skip the sort, 69 ms at 150k rows; the running tasks are a few per slot.
_RUNNING_ACCOUNTS = select(tasks.c.account_id).where(
    tasks.c.status == _RUNNING, tasks.c.type.in_(bindparam("p_types", expanding=True))
)
_TAKE = (
    update(tasks)
    .where(tasks.c.id.in_(bindparam("p_ids", expanding=True)), tasks.c.status == _PENDING)
    .values(
        status=_RUNNING,
        lease_owner=bindparam("p_owner"),
        lease_expires_at=bindparam("p_expires"),
        started_at=func.coalesce(tasks.c.started_at, bindparam("p_now")),
        attempts=tasks.c.attempts + 1,
    )
    .returning(tasks)
)


def _finish_statement(fenced: bool, captured: bool) -> Any:
    conditions = [tasks.c.id == bindparam("p_id"), tasks.c.status.in_(LIVE)]
    if fenced:
        conditions += [
            tasks.c.status == _RUNNING,
            tasks.c.lease_owner == bindparam("p_owner"),
            tasks.c.attempts == bindparam("p_attempt"),
        ]
    return (
        update(tasks)
        .where(and_(*conditions))
        .values(
            status=bindparam("p_status"),
            solution=bindparam("p_solution"),
            error_code=bindparam("p_error_code"),
            error_message=bindparam("p_error_message"),
            # cost is what the account paid: the held price when captured, else zero.
            cost=tasks.c.price if captured else 0,
            completed_at=bindparam("p_now"),
            lease_owner=None,
            lease_expires_at=None,
        )
        .returning(tasks)
    )


_FINISH = {
    (fenced, captured): _finish_statement(fenced, captured) for fenced in (False, True) for captured in (False, True)
}


def create(tx: Writer, new: NewTask) -> Task | None:
    if not tx.hold(new.account_id, new.task_id, new.price, new.created_at):
        return None
    sqlite = tx.conn.dialect.name == "sqlite"
    values: dict[str, Any] = {"p_floor": int(new.created_at * 1000)} if sqlite else {}
    row = tx.conn.execute(_INSERT_NUMBERED_TASK if sqlite else _INSERT_TASK, {
        **values, "id": new.task_id, "account_id": new.account_id, "type": new.type, "status": _PENDING,
        "params": dumps(new.params), "price": new.price, "created_at": new.created_at,
        "deadline_at": new.deadline_at, "attempts": 0, "callback_url": new.callback_url,
        "pool_only": new.pool_only,
    }).one()
    key = new.idempotency
    if key is not None:
        # A live key of the same name fails this insert on the primary key: the transaction rolls
        # back, hold and task with it.
        idempotency.remember_key(
            tx, new.account_id, key.key, key.request_hash, new.task_id, new.created_at, key.expired_before
        )
    return task_from_row(row)


def claim(
    tx: Writer, types: Sequence[str], owner: str, limit: int, lease_s: float, now: float, builtin_only: bool,
    max_running: int, accounts: Sequence[str] | None = None,
) -> list[ClaimedTask]:
    running = Counter(tx.conn.execute(_RUNNING_ACCOUNTS, {"p_types": list(types)}).scalars())
    # (rank, created_at, id), the rank counted after the account's running tasks (see pg_sql.CLAIM):
    # sorted, the task of the account with the fewest in flight comes first, then the oldest.
    candidates: list[tuple[int, float, str]] = []
    rank, account = 0, None
    for row in tx.conn.execute(_CANDIDATES[builtin_only], {
        "p_types": list(types), "p_limit": limit, "p_any_account": accounts is None, "p_accounts": list(accounts or ()),
    }):
        rank = rank + 1 if row.account_id == account else running[row.account_id] + 1
        account = row.account_id
        if not max_running or rank <= max_running:
            candidates.append((rank, row.created_at, row.id))
    picked = [task_id for _rank, _created, task_id in sorted(candidates)[:limit]]
    if not picked:
        return []
    rows = tx.conn.execute(_TAKE, {
        "p_ids": picked, "p_owner": owner, "p_expires": now + lease_s, "p_now": now,
    })
    claimed = sorted((task_from_row(r) for r in rows), key=lambda t: t.created_at)  # RETURNING has no order
    return [ClaimedTask(task=t, lease_owner=owner, attempt=t.attempts) for t in claimed]


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
    row = tx.conn.execute(_FINISH[(fence is not None, capture)], {
        "p_id": task_id, "p_owner": owner, "p_attempt": attempt, "p_status": status.value,
        "p_solution": dumps(solution) if solution is not None else None, "p_error_code": error_code,
        "p_error_message": error_message, "p_now": now,
    }).first()
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
