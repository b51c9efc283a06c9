"""SQL of idempotency keys: which task a client's key created, for 24 hours."""

from __future__ import annotations

from sqlalchemy import delete, insert, select

from cracker.store.schema import idempotency_keys
from cracker.store.units import Reader, Writer


def find_key(r: Reader, account_id: str, key: str, since: float) -> tuple[str, str] | None:
    """(request hash, task id) of a live key, or None."""
    row = r.conn.execute(
        select(idempotency_keys.c.request_hash, idempotency_keys.c.task_id).where(
            idempotency_keys.c.account_id == account_id,
            idempotency_keys.c.key == key,
            idempotency_keys.c.created_at >= since,
        )
    ).first()
    return (row.request_hash, row.task_id) if row is not None else None


def remember_key(tx: Writer, account_id: str, key: str, request_hash: str, task_id: str, at: float,
                 since: float) -> None:
    # An expired key may be reused: drop its old row first. A live one makes the insert fail on
    # the primary key, which the caller treats as "created concurrently".
    tx.conn.execute(
        delete(idempotency_keys).where(
            idempotency_keys.c.account_id == account_id,
            idempotency_keys.c.key == key,
            idempotency_keys.c.created_at < since,
        )
    )
    tx.conn.execute(
        insert(idempotency_keys).values(
            account_id=account_id, key=key, request_hash=request_hash, task_id=task_id, created_at=at
        )
    )


def purge_keys(tx: Writer, before: float) -> int:
    result = tx.conn.execute(delete(idempotency_keys).where(idempotency_keys.c.created_at < before))
    return result.rowcount or 0
