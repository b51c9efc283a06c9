"""SQL of retention: finished tasks age out of the hot tasks table; the ledger keeps the money."""

from __future__ import annotations

from sqlalchemy import delete, select

from cracker.domain.tasks import TaskStatus
from cracker.store.schema import task_events, tasks, webhook_attempts, webhook_deliveries
from cracker.store.units import Writer

_TERMINAL = (TaskStatus.COMPLETED.value, TaskStatus.REJECTED.value)


def delete_finished(tx: Writer, before: float, limit: int) -> int:
    """Delete up to ``limit`` tasks that ended before ``before``, with their webhook log and history.

    Ledger rows stay: they are the account's financial history, and balances derive from them.
    """
    ids = [
        row.id
        for row in tx.conn.execute(
            select(tasks.c.id)
            .where(tasks.c.status.in_(_TERMINAL), tasks.c.completed_at < before)
            .order_by(tasks.c.completed_at)
            .limit(limit)
        )
    ]
    if not ids:
        return 0
    tx.conn.execute(delete(webhook_attempts).where(webhook_attempts.c.task_id.in_(ids)))
    tx.conn.execute(delete(webhook_deliveries).where(webhook_deliveries.c.task_id.in_(ids)))
    tx.conn.execute(delete(task_events).where(task_events.c.task_id.in_(ids)))
    tx.conn.execute(delete(tasks).where(tasks.c.id.in_(ids)))
    return len(ids)
