"""SQL of leases and the worker registry: heartbeats, lease expiry, requeue.

Plain functions over a unit of work (``Reader``/``Writer``), composed by the service layer.
"""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import delete, insert, select, update

from cracker.domain.tasks import ClaimedTask, TaskStatus
from cracker.domain.workers import HeldLease, WorkerInfo, WorkerKind
from cracker.store.rows import task_from_row
from cracker.store.schema import tasks, workers
from cracker.store.units import Reader, Writer, skip_locked_pick

_RUNNING = TaskStatus.RUNNING.value


def _worker_from_row(row: Any) -> WorkerInfo:
    return WorkerInfo(
        id=row.id, kind=WorkerKind(row.kind), account_id=row.account_id, name=row.name,
        types=tuple(orjson.loads(row.types)), concurrency=row.concurrency, started_at=row.started_at,
        heartbeat_at=row.heartbeat_at, expires_at=row.expires_at,
    )


def register_worker(tx: Writer, worker: WorkerInfo) -> None:
    """Insert or replace the worker's row (a restarted worker keeps no state of its old self)."""
    tx.conn.execute(delete(workers).where(workers.c.id == worker.id))
    tx.conn.execute(
        insert(workers).values(
            id=worker.id, kind=worker.kind.value, account_id=worker.account_id, name=worker.name,
            types=orjson.dumps(list(worker.types)).decode(), concurrency=worker.concurrency,
            started_at=worker.started_at, heartbeat_at=worker.heartbeat_at, expires_at=worker.expires_at,
        )
    )


def get_worker(r: Reader, worker_id: str) -> WorkerInfo | None:
    row = r.conn.execute(select(workers).where(workers.c.id == worker_id)).first()
    return _worker_from_row(row) if row is not None else None


def live_workers(r: Reader, now: float) -> list[WorkerInfo]:
    query = select(workers).where(workers.c.expires_at > now).order_by(workers.c.started_at)
    return [_worker_from_row(row) for row in r.conn.execute(query)]


def heartbeat(tx: Writer, worker_id: str, now: float, lease_s: float) -> list[HeldLease] | None:
    """Keep the worker and every lease it holds alive for ``lease_s`` more; None for an unknown
    (deregistered or purged) worker. Returns the leases it still holds.

    The lease rows are locked with SKIP LOCKED: a row being completed right now is not waited on
    (it is ending anyway), and a heartbeat never deadlocks with the worker's own batch completion.
    """
    expires = now + lease_s
    changed = tx.conn.execute(
        update(workers).where(workers.c.id == worker_id).values(heartbeat_at=now, expires_at=expires)
    )
    if changed.rowcount == 0:
        return None
    held = select(tasks.c.id).where(tasks.c.status == _RUNNING, tasks.c.lease_owner == worker_id)
    tx.conn.execute(
        update(tasks)
        .where(
            skip_locked_pick(tx.conn, tasks.c.id, held), tasks.c.lease_owner == worker_id, tasks.c.status == _RUNNING
        )
        .values(lease_expires_at=expires)
    )
    rows = tx.conn.execute(
        select(tasks.c.id, tasks.c.attempts, tasks.c.lease_expires_at)
        .where(tasks.c.status == _RUNNING, tasks.c.lease_owner == worker_id)
    )
    return [HeldLease(task_id=r[0], attempt=r[1], lease_expires_at=r[2]) for r in rows]


def deregister_worker(tx: Writer, worker_id: str) -> list[str]:
    """Remove the worker and put every task it still holds back in the queue (a clean shutdown:
    its tasks need not wait for their leases to expire). Returns the requeued task ids."""
    requeued = [
        r[0] for r in tx.conn.execute(
            update(tasks)
            .where(tasks.c.status == _RUNNING, tasks.c.lease_owner == worker_id)
            .values(status=TaskStatus.PENDING.value, lease_owner=None, lease_expires_at=None)
            .returning(tasks.c.id)
        )
    ]
    tx.conn.execute(delete(workers).where(workers.c.id == worker_id))
    return requeued


def requeue_expired_leases(tx: Writer, now: float, max_attempts: int, limit: int) -> list[str]:
    """Put running tasks whose lease ran out back in the queue, if they have attempts left.

    SKIP LOCKED (PostgreSQL): the reapers of several processes split the rows between them.
    """
    expired = (
        select(tasks.c.id)
        .where(tasks.c.status == _RUNNING, tasks.c.lease_expires_at < now, tasks.c.attempts < max_attempts)
        .limit(limit)
    )
    rows = tx.conn.execute(
        update(tasks)
        .where(skip_locked_pick(tx.conn, tasks.c.id, expired), tasks.c.status == _RUNNING,
               tasks.c.lease_expires_at < now)
        .values(status=TaskStatus.PENDING.value, lease_owner=None, lease_expires_at=None)
        .returning(tasks.c.id)
    )
    return [r[0] for r in rows]


def exhausted_leases(r: Reader, now: float, max_attempts: int, limit: int) -> list[ClaimedTask]:
    """Running tasks whose lease ran out on their last attempt, with the fence their rejection
    needs (a worker that completes meanwhile wins, and the rejection matches nothing)."""
    query = (
        select(tasks)
        .where(tasks.c.status == _RUNNING, tasks.c.lease_expires_at < now, tasks.c.attempts >= max_attempts)
        .limit(limit)
    )
    out = []
    for row in r.conn.execute(query):
        task = task_from_row(row)
        out.append(ClaimedTask(task=task, lease_owner=task.lease_owner or "", attempt=task.attempts))
    return out


def purge_dead_workers(tx: Writer, before: float) -> int:
    """Forget workers silent since ``before``: the registry lists recent workers, not all time."""
    return tx.conn.execute(delete(workers).where(workers.c.expires_at < before)).rowcount

