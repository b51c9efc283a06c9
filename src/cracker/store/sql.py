"""The store: every SQL statement of the service, over SQLAlchemy Core, for SQLite and PostgreSQL.

The service layer opens a unit of work (``store.read()`` or ``store.write()``) and composes these
methods; a unit of work is one transaction.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import orjson
from sqlalchemy import Row, and_, func, insert, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cracker.domain.accounts import ApiKeyRecord, Balance, Scope
from cracker.domain.errors import ServiceUnavailable
from cracker.domain.tasks import ClaimedTask, Task, TaskStatus
from cracker.store.engines import create_engines
from cracker.store.schema import accounts, api_keys, ledger, offers, tasks

_LIVE = (TaskStatus.PENDING.value, TaskStatus.RUNNING.value)


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _task_from_row(row: Row[Any]) -> Task:
    m = row._mapping
    return Task(
        id=m["id"],
        account_id=m["account_id"],
        type=m["type"],
        status=TaskStatus(m["status"]),
        params=orjson.loads(m["params"]),
        solution=orjson.loads(m["solution"]) if m["solution"] is not None else None,
        error_code=m["error_code"],
        error_message=m["error_message"],
        price=m["price"],
        cost=m["cost"],
        created_at=m["created_at"],
        started_at=m["started_at"],
        completed_at=m["completed_at"],
        deadline_at=m["deadline_at"],
        lease_owner=m["lease_owner"],
        attempts=m["attempts"],
    )


class Reader:
    """Queries that read; usable inside a write unit too."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def get_task(self, task_id: str) -> Task | None:
        row = (await self.conn.execute(select(tasks).where(tasks.c.id == task_id))).first()
        return _task_from_row(row) if row is not None else None

    async def get_api_key(self, key_hash: str) -> ApiKeyRecord | None:
        row = (
            await self.conn.execute(
                select(api_keys.c.id, api_keys.c.account_id, api_keys.c.key_hash, api_keys.c.scope).where(
                    api_keys.c.key_hash == key_hash, api_keys.c.revoked_at.is_(None)
                )
            )
        ).first()
        if row is None:
            return None
        return ApiKeyRecord(id=row.id, account_id=row.account_id, key_hash=row.key_hash, scope=Scope(row.scope))

    async def get_balance(self, account_id: str) -> Balance | None:
        row = (
            await self.conn.execute(
                select(accounts.c.available, accounts.c.held).where(accounts.c.id == account_id)
            )
        ).first()
        return Balance(available=row.available, held=row.held) if row is not None else None

    async def list_offers(self, *, enabled_only: bool = True) -> list[tuple[str, int, bool]]:
        query = select(offers.c.type, offers.c.price, offers.c.enabled).order_by(offers.c.type)
        if enabled_only:
            query = query.where(offers.c.enabled.is_(True))
        return [(r.type, r.price, r.enabled) for r in await self.conn.execute(query)]

    async def get_offer_price(self, task_type: str) -> int | None:
        row = (
            await self.conn.execute(
                select(offers.c.price).where(offers.c.type == task_type, offers.c.enabled.is_(True))
            )
        ).first()
        return row.price if row is not None else None

    async def queue_depths(self) -> dict[tuple[str, str], int]:
        """(type, status) -> count of live tasks, for the metrics endpoint."""
        query = (
            select(tasks.c.type, tasks.c.status, func.count())
            .where(tasks.c.status.in_(_LIVE))
            .group_by(tasks.c.type, tasks.c.status)
        )
        return {(r[0], r[1]): r[2] for r in await self.conn.execute(query)}

    async def ledger_totals(self) -> dict[str, tuple[int, int]]:
        """account_id -> (sum of available deltas, sum of held deltas): what the balances must equal."""
        query = select(
            ledger.c.account_id, func.sum(ledger.c.available_delta), func.sum(ledger.c.held_delta)
        ).group_by(ledger.c.account_id)
        return {r[0]: (int(r[1]), int(r[2])) for r in await self.conn.execute(query)}

    async def account_balances(self) -> dict[str, tuple[int, int]]:
        query = select(accounts.c.id, accounts.c.available, accounts.c.held)
        return {r.id: (r.available, r.held) for r in await self.conn.execute(query)}

    async def find_account(self, name: str) -> str | None:
        query = select(accounts.c.id).where(accounts.c.name == name).order_by(accounts.c.created_at).limit(1)
        row = (await self.conn.execute(query)).first()
        return row.id if row is not None else None

    async def account_exists(self, account_id: str) -> bool:
        query = select(accounts.c.id).where(accounts.c.id == account_id)
        return (await self.conn.execute(query)).first() is not None


class Writer(Reader):
    """Statements that change state; only inside ``store.write()``."""

    async def insert_account(self, account_id: str, name: str, now: float) -> None:
        await self.conn.execute(insert(accounts).values(id=account_id, name=name, created_at=now))

    async def insert_api_key(
        self, key_id: str, account_id: str, key_hash: str, prefix: str, scope: Scope, now: float
    ) -> None:
        await self.conn.execute(
            insert(api_keys).values(
                id=key_id, account_id=account_id, key_hash=key_hash, prefix=prefix, scope=scope.value,
                created_at=now,
            )
        )

    async def upsert_offer(self, task_type: str, price: int, enabled: bool, now: float) -> None:
        changed = await self.conn.execute(
            update(offers)
            .where(offers.c.type == task_type)
            .values(price=price, enabled=enabled, updated_at=now)
        )
        if changed.rowcount == 0:
            await self.conn.execute(
                insert(offers).values(type=task_type, price=price, enabled=enabled, updated_at=now)
            )

    async def _ledger(
        self, account_id: str, task_id: str | None, kind: str, available: int, held: int, now: float
    ) -> None:
        await self.conn.execute(
            insert(ledger).values(
                account_id=account_id, task_id=task_id, kind=kind, available_delta=available,
                held_delta=held, created_at=now,
            )
        )

    async def top_up(self, account_id: str, amount: int, now: float) -> bool:
        changed = await self.conn.execute(
            update(accounts)
            .where(accounts.c.id == account_id)
            .values(available=accounts.c.available + amount)
        )
        if changed.rowcount == 0:
            return False
        await self._ledger(account_id, None, "topup", amount, 0, now)
        return True

    async def hold(self, account_id: str, task_id: str, amount: int, now: float) -> bool:
        """Move ``amount`` from available to held, atomically refusing to overspend.

        The balance check and the debit are one conditional UPDATE, so two concurrent creates can
        never both pass the check on the same money, on SQLite or PostgreSQL alike.
        """
        changed = await self.conn.execute(
            update(accounts)
            .where(accounts.c.id == account_id, accounts.c.available >= amount)
            .values(available=accounts.c.available - amount, held=accounts.c.held + amount)
        )
        if changed.rowcount == 0:
            return False
        await self._ledger(account_id, task_id, "hold", -amount, amount, now)
        return True

    async def settle(self, task: Task, *, capture: bool, now: float) -> None:
        """Capture (keep) or release (refund) a task's hold. The ledger's unique (task, kind) refuses a
        second settlement, which rolls the whole unit of work back."""
        amount = task.price
        values = {"held": accounts.c.held - amount}
        if not capture:
            values["available"] = accounts.c.available + amount
        await self.conn.execute(update(accounts).where(accounts.c.id == task.account_id).values(**values))
        kind = "capture" if capture else "release"
        await self._ledger(task.account_id, task.id, kind, 0 if capture else amount, -amount, now)

    async def insert_task(
        self,
        *,
        task_id: str,
        account_id: str,
        task_type: str,
        params: dict[str, Any],
        price: int,
        now: float,
        deadline_at: float,
    ) -> Task:
        row = (
            await self.conn.execute(
                insert(tasks)
                .values(
                    id=task_id, account_id=account_id, type=task_type, status=TaskStatus.PENDING.value,
                    params=_dumps(params), price=price, created_at=now, deadline_at=deadline_at, attempts=0,
                )
                .returning(tasks)
            )
        ).one()
        return _task_from_row(row)

    async def claim_tasks(
        self, types: Sequence[str], owner: str, limit: int, lease_s: float, now: float
    ) -> list[ClaimedTask]:
        """Lease up to ``limit`` pending tasks of ``types``, oldest first, in one statement."""
        if not types or limit <= 0:
            return []
        pending = (
            select(tasks.c.id)
            .where(tasks.c.status == TaskStatus.PENDING.value, tasks.c.type.in_(list(types)))
            .order_by(tasks.c.created_at)
            .limit(limit)
        )
        pending = self._lock_pending(pending)
        rows = await self.conn.execute(
            update(tasks)
            .where(tasks.c.id.in_(pending.scalar_subquery()), tasks.c.status == TaskStatus.PENDING.value)
            .values(
                status=TaskStatus.RUNNING.value,
                lease_owner=owner,
                lease_expires_at=now + lease_s,
                started_at=func.coalesce(tasks.c.started_at, now),
                attempts=tasks.c.attempts + 1,
            )
            .returning(tasks)
        )
        claimed = [_task_from_row(r) for r in rows]
        return [ClaimedTask(task=t, lease_owner=owner, attempt=t.attempts) for t in claimed]

    def _lock_pending(self, query: Any) -> Any:
        # SQLite's BEGIN IMMEDIATE already excludes other writers; PostgreSQL skips rows that a
        # concurrent claimer holds instead of waiting on them.
        if self.conn.dialect.name == "postgresql":
            return query.with_for_update(skip_locked=True)
        return query

    async def finish_task(
        self,
        task_id: str,
        *,
        status: TaskStatus,
        now: float,
        solution: dict[str, Any] | None = None,
        error_code: str | None = None,
        error_message: str | None = None,
        cost_if_captured: bool = False,
        fence: tuple[str, int] | None = None,
    ) -> Task | None:
        """Move a live task to a terminal status; None when it was not live (or the fence failed).

        With a ``fence`` (lease owner, attempt) only the worker that holds the current lease can
        finish the task: a worker whose lease expired and was re-granted updates zero rows.
        """
        conditions = [tasks.c.id == task_id, tasks.c.status.in_(_LIVE)]
        if fence is not None:
            owner, attempt = fence
            conditions += [
                tasks.c.status == TaskStatus.RUNNING.value,
                tasks.c.lease_owner == owner,
                tasks.c.attempts == attempt,
            ]
        row = (
            await self.conn.execute(
                update(tasks)
                .where(and_(*conditions))
                .values(
                    status=status.value,
                    solution=_dumps(solution) if solution is not None else None,
                    error_code=error_code,
                    error_message=error_message,
                    # cost is what the account paid: the held price when captured, else zero.
                    cost=tasks.c.price if cost_if_captured else 0,
                    completed_at=now,
                    lease_owner=None,
                    lease_expires_at=None,
                )
                .returning(tasks)
            )
        ).first()
        return _task_from_row(row) if row is not None else None

    async def overdue_task_ids(self, now: float, limit: int) -> list[str]:
        query = (
            select(tasks.c.id)
            .where(tasks.c.status.in_(_LIVE), tasks.c.deadline_at < now)
            .order_by(tasks.c.deadline_at)
            .limit(limit)
        )
        return [r.id for r in await self.conn.execute(query)]


class Store:
    """Owns the engines; hands out units of work."""

    def __init__(self, writer: AsyncEngine, reader: AsyncEngine) -> None:
        self._writer = writer
        self._reader = reader

    @classmethod
    def open(cls, url: str, *, sqlite_busy_timeout_ms: int = 5_000) -> Store:
        writer, reader = create_engines(url, sqlite_busy_timeout_ms=sqlite_busy_timeout_ms)
        return cls(writer, reader)

    @property
    def dialect(self) -> str:
        return self._writer.dialect.name

    async def close(self) -> None:
        await self._writer.dispose()
        if self._reader is not self._writer:
            await self._reader.dispose()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[Reader]:
        try:
            async with self._reader.connect() as conn:
                yield Reader(conn)
                await conn.rollback()
        except (DBAPIError, OSError, PoolTimeout) as exc:
            _raise_if_unavailable(exc)
            raise

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Writer]:
        """One transaction: committed when the block ends, rolled back if it raises."""
        try:
            async with self._writer.begin() as conn:
                yield Writer(conn)
        except (DBAPIError, OSError, PoolTimeout) as exc:
            _raise_if_unavailable(exc)
            raise


_SQLITE_TRANSIENT = ("database is locked", "database is busy", "unable to open", "disk i/o error")


def _raise_if_unavailable(exc: Exception) -> None:
    """Turn the database being busy or unreachable into ``service_unavailable`` (retryable).

    Anything else (a missing table, a constraint) is a bug or a broken install: it stays an
    internal error.
    """
    if isinstance(exc, PoolTimeout):
        raise ServiceUnavailable("The database is saturated; retry shortly") from exc
    if isinstance(exc, OSError) or (isinstance(exc, DBAPIError) and exc.connection_invalidated):
        raise ServiceUnavailable("The database is unreachable; retry shortly") from exc
    if isinstance(exc, OperationalError | InterfaceError):
        text = str(exc.orig).lower()
        if any(marker in text for marker in _SQLITE_TRANSIENT):
            raise ServiceUnavailable("The database is busy; retry shortly") from exc
        if "sqlite" not in type(exc.orig).__module__:
            raise ServiceUnavailable("The database is unavailable; retry shortly") from exc


__all__ = ["IntegrityError", "Reader", "Store", "Writer"]
