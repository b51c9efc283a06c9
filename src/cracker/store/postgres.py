"""The PostgreSQL store: each per-task operation is one statement over a plain asyncpg pool
(``pg_sql``); the cold units of work run over SQLAlchemy with ``run_sync``.

Round trips are what an operation costs here (each one is a send, a wake-up of the server and
a wait, and SQLAlchemy's async adaptation adds Python on top of each), so the store spends as few
as it can:

- the per-task operations (create, claim, completion batch, rejection, poll) are one statement,
  one round trip each, in autocommit (a single statement is a transaction), prepared once per
  connection;
- reads run in autocommit: one round trip per statement, no BEGIN/ROLLBACK around them. A read
  unit of work therefore sees each statement's own snapshot, which every read of the service
  tolerates (they are single statements, or reports taken when nothing is moving);
- pooled connections are pinged only after they sat idle (a database restart leaves the pool
  full of dead connections; under load no connection is idle long enough to need it), instead
  of SQLAlchemy's ``pool_pre_ping`` round trips on every checkout;
- a write that loses a deadlock or a serialization conflict was rolled back by the server
  entirely, so it is simply run again.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import asyncpg
from sqlalchemy import event
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine

from cracker.domain.clock import new_id
from cracker.domain.errors import ServiceUnavailable
from cracker.domain.tasks import ClaimedTask, Task, TaskStatus, TaskView
from cracker.domain.workers import Completion
from cracker.store import pg_sql
from cracker.store.availability import is_unreachable, raise_store_error
from cracker.store.engines import PgTimeouts, create_postgres_engine
from cracker.store.errors import ConstraintViolation, IdempotencyKeyTaken
from cracker.store.interface import NewTask, Rejection, Store
from cracker.store.notify import asyncpg_dsn
from cracker.store.pg_groups import CreateGroups, create_args
from cracker.store.rows import dumps, task_from_row, view_from_row
from cracker.store.units import Reader, Writer

T = TypeVar("T")
log = logging.getLogger("cracker.store")

#: A pooled connection idle longer than this is pinged before use.
_PING_IDLE_S = 2.0
#: deadlock_detected, serialization_failure: the server rolled the transaction back; rerun it.
_RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})
_RETRYABLE = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)
_ATTEMPTS = 4


def _ping_idle_connections(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["returned_at"] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        if time.monotonic() - record.info.get("returned_at", time.monotonic()) < _PING_IDLE_S:
            return
        try:
            dbapi_connection.ping()
        except Exception as exc:
            # The pool discards this connection and checks out (or opens) another.
            raise DisconnectionError("idle connection failed its ping") from exc


def _raise_if_unreachable(exc: Exception) -> None:
    """What SQLAlchemy does not wrap (asyncpg's own errors at connect time, say) is judged the same."""
    if is_unreachable(exc):
        raise ServiceUnavailable("The database is unreachable; retry shortly") from exc


async def _keep_session(_conn: asyncpg.Connection) -> None:
    """No reset when a connection goes back to the pool.

    asyncpg's default reset (``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL``) is
    one more round trip per statement: it was a third of the server's statements. These
    connections run only ``pg_sql``'s statements, which leave no session state behind.
    """


class PostgresStore(Store):
    dialect = "postgresql"

    def __init__(
        self, url: str, *, pool_size: int = 5, statement_pool_size: int = 10, timeouts: PgTimeouts | None = None
    ) -> None:
        self._timeouts = timeouts or PgTimeouts()
        self._engine: AsyncEngine = create_postgres_engine(url, pool_size=pool_size, timeouts=self._timeouts)
        _ping_idle_connections(self._engine)
        # The same pool; a connection checked out here runs in autocommit until it is returned.
        self._read_engine = self._engine.execution_options(isolation_level="AUTOCOMMIT")
        self._dsn = asyncpg_dsn(url)
        self._statement_pool_size = statement_pool_size
        self._pool: asyncpg.Pool | None = None
        self._opening: asyncio.Lock | None = None
        self._create_groups = CreateGroups(self._create_one, self._create_group)

    # --- the per-task operations: one statement each (see pg_sql) -------------------------------

    async def create_task(self, new: NewTask) -> Task | None:
        key = new.idempotency
        if key is None:
            created = await self._create_groups.submit(new)
        else:
            args = [*create_args(new), key.key, key.request_hash]
            try:
                created = await self._run(lambda conn: conn.fetchval(pg_sql.CREATE_WITH_KEY, *args))
            except ConstraintViolation:
                # The key is taken: by a live key (the caller answers as its create did), or by an
                # expired one not purged yet, which this create takes over. Rare: off the hot path.
                forgotten = await self._run(
                    lambda conn: conn.execute(pg_sql.FORGET_EXPIRED_KEY, new.account_id, key.key, key.expired_before)
                )
                if forgotten == "DELETE 0":
                    raise IdempotencyKeyTaken(key.key) from None
                try:
                    created = await self._run(lambda conn: conn.fetchval(pg_sql.CREATE_WITH_KEY, *args))
                except ConstraintViolation as exc:  # a concurrent create took the freed name
                    raise IdempotencyKeyTaken(key.key) from exc
        if not created:
            return None
        return Task(
            id=new.task_id, account_id=new.account_id, type=new.type, status=TaskStatus.PENDING, params=new.params,
            solution=None, error_code=None, error_message=None, price=new.price, cost=None,
            created_at=new.created_at, started_at=None, completed_at=None, deadline_at=new.deadline_at,
            lease_owner=None, attempts=0, callback_url=new.callback_url,
        )

    async def _create_one(self, new: NewTask) -> bool:
        args = create_args(new)
        return bool(await self._run(lambda conn: conn.fetchval(pg_sql.CREATE, *args)))

    async def _create_group(self, args: list[Any], skip_locked: bool) -> set[str]:
        # Retried: the group's accounts are locked in id order, but a lost deadlock (another
        # writer that locks several accounts otherwise) must not fail the group's creates.
        rows = await self._run(lambda conn: conn.fetch(pg_sql.CREATE_GROUP[skip_locked], *args), retry=True)
        return {row[0] for row in rows}

    async def claim_tasks(
        self, types: Sequence[str], owner: str, limit: int, lease_s: float, now: float, *, builtin_only: bool = False,
        accounts: Sequence[str] | None = None, max_running_per_account: int = 0,
    ) -> list[ClaimedTask]:
        if not types or limit <= 0:
            return []
        only = list(accounts) if accounts is not None else None
        rows = await self._run(
            lambda conn: conn.fetch(
                pg_sql.CLAIM[builtin_only], list(types), limit, owner, now + lease_s, now, max_running_per_account,
                only,
            ),
            retry=True,
        )
        claimed = sorted((task_from_row(r) for r in rows), key=lambda t: t.created_at)  # RETURNING has no order
        return [ClaimedTask(task=t, lease_owner=owner, attempt=t.attempts) for t in claimed]

    async def complete_tasks(self, items: Sequence[Completion], now: float) -> list[Task]:
        if not items:
            return []
        return await self._end(
            fenced=True, ids=[c.task_id for c in items], owners=[c.lease_owner for c in items],
            attempts=[c.attempt for c in items], solutions=[dumps(c.solution) for c in items],
            status=TaskStatus.COMPLETED, code=None, message=None, capture=True, now=now,
        )

    async def reject_task(
        self, task_id: str, rejection: Rejection, now: float, *, fence: tuple[str, int] | None = None
    ) -> Task | None:
        owner, attempt = fence if fence is not None else (None, None)
        ended = await self._end(
            fenced=fence is not None, ids=[task_id], owners=[owner], attempts=[attempt], solutions=[None],
            status=TaskStatus.REJECTED, code=rejection.code, message=rejection.message, capture=rejection.charged,
            now=now,
        )
        return ended[0] if ended else None

    async def reject_overdue(self, rejection: Rejection, now: float, limit: int) -> list[Task]:
        rows = await self._run(lambda conn: conn.fetch(pg_sql.OVERDUE, now, limit), retry=True)
        if not rows:
            return []
        return await self._end(
            fenced=False, ids=[r[0] for r in rows], owners=[None] * len(rows), attempts=[None] * len(rows),
            solutions=[None] * len(rows), status=TaskStatus.REJECTED, code=rejection.code,
            message=rejection.message, capture=rejection.charged, now=now,
        )

    async def _end(
        self, *, fenced: bool, ids: list[str], owners: list[str | None], attempts: list[int | None],
        solutions: list[str | None], status: TaskStatus, code: str | None, message: str | None, capture: bool,
        now: float,
    ) -> list[Task]:
        args = (ids, owners, attempts, solutions, [new_id() for _ in ids], status.value, code, message, capture, now)
        rows = await self._run(lambda conn: conn.fetch(pg_sql.END[fenced], *args), retry=True)
        return [task_from_row(r) for r in rows]

    async def get_task_view(self, task_id: str) -> TaskView | None:
        row = await self._run(lambda conn: conn.fetchrow(pg_sql.VIEW, task_id), retry=True)
        return view_from_row(row) if row is not None else None

    async def _get_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            if self._opening is None:
                self._opening = asyncio.Lock()
            async with self._opening:
                if self._pool is None:
                    self._pool = await asyncpg.create_pool(
                        self._dsn, min_size=1, max_size=self._statement_pool_size,
                        # Closed after a minute unused, so a restarted server leaves few dead ones.
                        max_inactive_connection_lifetime=60, reset=_keep_session,
                        **self._timeouts.connect_args(),
                    )
        return self._pool

    async def _run(self, query: Callable[[asyncpg.Connection], Awaitable[T]], *, retry: bool = False) -> T:
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                pool = await self._get_pool()
                try:
                    # Bounded: with every connection busy (or being opened to a server that does
                    # not answer), the request gives up with a 503 instead of queueing unseen.
                    connection = await pool.acquire(timeout=self._timeouts.pool_s)
                except TimeoutError as exc:
                    raise ServiceUnavailable("The database is saturated or unreachable; retry shortly") from exc
                try:
                    return await query(connection)
                except asyncpg.InternalClientError:
                    # asyncpg's protocol state is broken: seen when the server ended the session
                    # (pg_terminate_backend, a shutdown) just before this statement. The
                    # connection is unusable; drop it rather than hand it to the next caller.
                    connection.terminate()
                    raise
                finally:
                    await pool.release(connection)
            except _RETRYABLE:
                if not retry or attempt == _ATTEMPTS:
                    raise
                await asyncio.sleep(random.uniform(0, 0.01 * attempt))
            except asyncpg.UniqueViolationError as exc:
                raise ConstraintViolation(str(exc)) from exc
            except ServiceUnavailable:
                raise
            except Exception as exc:
                # A restart, a refusal (pg_hba, too many connections), a cut connection: the
                # client may retry. Anything else is a bug and stays what it is (a 500).
                if is_unreachable(exc):
                    raise ServiceUnavailable("The database is unreachable; retry shortly") from exc
                raise
        raise AssertionError("unreachable")

    # --- units of work ------------------------------------------------------------------------

    async def read(self, work: Callable[[Reader], T]) -> T:
        try:
            async with self._read_engine.connect() as conn:
                return await conn.run_sync(lambda sync_conn: work(Reader(sync_conn)))
        except (DBAPIError, OSError, PoolTimeout) as exc:
            raise_store_error(exc)
            raise
        except Exception as exc:
            _raise_if_unreachable(exc)
            raise

    async def write(self, work: Callable[[Writer], T]) -> T:
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                async with self._engine.begin() as conn:
                    return await conn.run_sync(lambda sync_conn: work(Writer(sync_conn)))
            except DBAPIError as exc:
                if getattr(exc.orig, "sqlstate", None) in _RETRYABLE_SQLSTATES and attempt < _ATTEMPTS:
                    log.info("write lost a lock conflict (%s); retrying", getattr(exc.orig, "sqlstate", ""))
                    await asyncio.sleep(random.uniform(0, 0.01 * attempt))
                    continue
                raise_store_error(exc)
                raise
            except (OSError, PoolTimeout) as exc:
                raise_store_error(exc)
                raise
            except Exception as exc:
                _raise_if_unreachable(exc)
                raise
        raise AssertionError("unreachable")

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()
        await self._engine.dispose()
