"""SQL of batch creates: the items' tasks in one transaction, and the batch's Idempotency-Key.

The same statements run on both stores (one unit of work over a ``Writer``): a batch is a cold
path next to the single create, whose PostgreSQL form is one hand-written statement.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import delete, insert, select

from cracker.domain.tasks import Task
from cracker.store import sqlite_tasks
from cracker.store.interface import NewTask
from cracker.store.schema import batch_keys
from cracker.store.units import Reader, Writer


@dataclass(frozen=True, slots=True)
class BatchKey:
    """A batch's Idempotency-Key and what to remember with it."""

    key: str
    request_hash: str
    #: A key remembered before this instant has expired: this batch may take its name over.
    expired_before: float


@dataclass(frozen=True, slots=True)
class RememberedBatch:
    request_hash: str
    #: The JSON the batch was answered with (see ``schema.batch_keys``).
    outcome: str


#: Renders the answer to remember, once the items' results are known (inside the transaction).
RenderOutcome = Callable[[Sequence[Task | None]], str]


def create_batch(
    tx: Writer, account_id: str, news: Sequence[NewTask], key: BatchKey | None, render: RenderOutcome, at: float,
) -> list[Task | None]:
    """Each item as a single create would do it (hold, ledger row, task), in order, in this one
    transaction; None where the balance left after the items before it is short of its price.
    With a key, the batch's answer is remembered too: a live key of that name fails the insert on
    the primary key and rolls everything back (the caller replays the winner's answer)."""
    created = [sqlite_tasks.create(tx, new) for new in news]
    if key is not None:
        # An expired key may be reused: drop its old row first.
        tx.conn.execute(
            delete(batch_keys).where(
                batch_keys.c.account_id == account_id,
                batch_keys.c.key == key.key,
                batch_keys.c.created_at < key.expired_before,
            )
        )
        tx.conn.execute(
            insert(batch_keys).values(
                account_id=account_id, key=key.key, request_hash=key.request_hash, outcome=render(created),
                created_at=at,
            )
        )
    return created


def find_batch_key(r: Reader, account_id: str, key: str, since: float) -> RememberedBatch | None:
    row = r.conn.execute(
        select(batch_keys.c.request_hash, batch_keys.c.outcome).where(
            batch_keys.c.account_id == account_id,
            batch_keys.c.key == key,
            batch_keys.c.created_at >= since,
        )
    ).first()
    return RememberedBatch(row.request_hash, row.outcome) if row is not None else None


def purge_batch_keys(tx: Writer, before: float) -> int:
    result = tx.conn.execute(delete(batch_keys).where(batch_keys.c.created_at < before))
    return result.rowcount or 0
