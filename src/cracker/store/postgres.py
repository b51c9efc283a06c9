"""The PostgreSQL store: the same synchronous units of work, run over asyncpg with ``run_sync``.

Round trips are what a unit of work costs here (each one is a send, a wake-up of the server and
a wait), so the store spends as few as it can:

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
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine

from cracker.store.engines import create_postgres_engine
from cracker.store.pg_hot_path import PostgresHotPath
from cracker.store.sql import Reader, Store, Writer, raise_if_unavailable

T = TypeVar("T")
log = logging.getLogger("cracker.store")

#: A pooled connection idle longer than this is pinged before use.
_PING_IDLE_S = 2.0
#: deadlock_detected, serialization_failure: the server rolled the transaction back; rerun it.
_RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})
_WRITE_ATTEMPTS = 4


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


def _retryable(exc: DBAPIError) -> bool:
    return getattr(exc.orig, "sqlstate", None) in _RETRYABLE_SQLSTATES


class PostgresStore(Store):
    dialect = "postgresql"

    def __init__(self, url: str, *, pool_size: int = 5) -> None:
        self._engine: AsyncEngine = create_postgres_engine(url, pool_size=pool_size)
        _ping_idle_connections(self._engine)
        # The same pool; a connection checked out here runs in autocommit until it is returned.
        self._read_engine = self._engine.execution_options(isolation_level="AUTOCOMMIT")
        self.hot: PostgresHotPath = PostgresHotPath(url)

    async def read(self, work: Callable[[Reader], T]) -> T:
        try:
            async with self._read_engine.connect() as conn:
                return await conn.run_sync(lambda sync_conn: work(Reader(sync_conn)))
        except (DBAPIError, OSError, PoolTimeout) as exc:
            raise_if_unavailable(exc)
            raise

    async def write(self, work: Callable[[Writer], T]) -> T:
        for attempt in range(1, _WRITE_ATTEMPTS + 1):
            try:
                async with self._engine.begin() as conn:
                    return await conn.run_sync(lambda sync_conn: work(Writer(sync_conn)))
            except DBAPIError as exc:
                if _retryable(exc) and attempt < _WRITE_ATTEMPTS:
                    log.info("write lost a lock conflict (%s); retrying", getattr(exc.orig, "sqlstate", ""))
                    await asyncio.sleep(random.uniform(0, 0.01 * attempt))
                    continue
                raise_if_unavailable(exc)
                raise
            except (OSError, PoolTimeout) as exc:
                raise_if_unavailable(exc)
                raise
        raise AssertionError("unreachable")

    async def close(self) -> None:
        await self.hot.close()
        await self._engine.dispose()
