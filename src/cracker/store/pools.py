"""SQL of pool trust: the operators' grants of task types to an account's pools, and the record
of what remote pools did to each task (its history)."""

from __future__ import annotations

from collections.abc import Sequence

import orjson
from sqlalchemy import delete, insert, select, update

from cracker.domain.tasks import TaskStatus
from cracker.domain.workers import PoolGrant, TaskEvent
from cracker.store.schema import pool_accounts, pool_grants, task_events, tasks
from cracker.store.units import Reader, Writer


def get_grant(r: Reader, account_id: str) -> PoolGrant | None:
    row = r.conn.execute(select(pool_grants).where(pool_grants.c.account_id == account_id)).first()
    if row is None:
        return None
    return PoolGrant(
        account_id=row.account_id, all_types=bool(row.all_types), types=tuple(orjson.loads(row.types)),
        updated_at=row.updated_at,
    )


def set_grant(tx: Writer, grant: PoolGrant) -> None:
    """Replace the account's grant (the operator states the whole set each time)."""
    tx.conn.execute(delete(pool_grants).where(pool_grants.c.account_id == grant.account_id))
    tx.conn.execute(
        insert(pool_grants).values(
            account_id=grant.account_id, all_types=grant.all_types,
            types=orjson.dumps(sorted(grant.types)).decode(), updated_at=grant.updated_at,
        )
    )


def delete_grant(tx: Writer, account_id: str) -> bool:
    return tx.conn.execute(delete(pool_grants).where(pool_grants.c.account_id == account_id)).rowcount > 0


def served_accounts(r: Reader, pool_account_id: str) -> list[str] | None:
    """The accounts the pool account's pools are limited to; None when it is not limited."""
    rows = r.conn.execute(
        select(pool_accounts.c.account_id)
        .where(pool_accounts.c.pool_account_id == pool_account_id)
        .order_by(pool_accounts.c.account_id)
    )
    served = [row.account_id for row in rows]
    return served or None


def set_served_accounts(tx: Writer, pool_account_id: str, accounts: Sequence[str] | None) -> None:
    """Replace the limit; None (or no accounts) removes it."""
    tx.conn.execute(delete(pool_accounts).where(pool_accounts.c.pool_account_id == pool_account_id))
    if accounts:
        tx.conn.execute(
            insert(pool_accounts), [{"pool_account_id": pool_account_id, "account_id": a} for a in accounts]
        )


def record_events(tx: Writer, events: Sequence[TaskEvent]) -> None:
    if not events:
        return
    tx.conn.execute(
        insert(task_events),
        [
            {"task_id": e.task_id, "at": e.at, "event": e.event, "worker_id": e.worker_id,
             "worker_name": e.worker_name, "pool_account_id": e.pool_account_id, "attempt": e.attempt,
             "error_code": e.error_code}
            for e in events
        ],
    )


def task_history(r: Reader, task_id: str) -> list[TaskEvent]:
    rows = r.conn.execute(select(task_events).where(task_events.c.task_id == task_id).order_by(task_events.c.id))
    return [
        TaskEvent(
            task_id=row.task_id, at=row.at, event=row.event, worker_id=row.worker_id, worker_name=row.worker_name,
            pool_account_id=row.pool_account_id, attempt=row.attempt, error_code=row.error_code,
        )
        for row in rows
    ]


def release_leases(tx: Writer, owner: str, task_ids: Sequence[str]) -> int:
    """Put tasks just claimed by ``owner`` back in the queue, their attempt given back: the lease
    was never handed out, so no one holds that attempt."""
    if not task_ids:
        return 0
    return tx.conn.execute(
        update(tasks)
        .where(tasks.c.id.in_(list(task_ids)), tasks.c.lease_owner == owner,
               tasks.c.status == TaskStatus.RUNNING.value)
        .values(status=TaskStatus.PENDING.value, lease_owner=None, lease_expires_at=None, attempts=tasks.c.attempts - 1)
    ).rowcount
