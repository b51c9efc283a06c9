"""Database URLs and engines.

SQLite: WAL, a busy timeout, ``BEGIN IMMEDIATE`` for writes, one writer connection per process.
Transactions are plain synchronous SQLAlchemy code: on SQLite they run on the store's own threads
(a thread hop per transaction, not per statement as with an async SQLite driver); on PostgreSQL
the same code runs over asyncpg through ``AsyncConnection.run_sync``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


def normalise_url(url: str) -> str:
    """Accept the plain URLs operators write and pick the driver for each database."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            raise ValueError("an in-memory SQLite database cannot be shared; give a file path")
        return parsed.set(drivername="sqlite+pysqlite").render_as_string(hide_password=False)
    if backend in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)
    raise ValueError(f"unsupported database URL {parsed.render_as_string()!r}: use sqlite:// or postgresql://")


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def create_sqlite_engine(url: str, *, writer: bool | None, busy_timeout_ms: int, checkpoint: bool = True) -> Engine:
    """``writer``: True for the writer (BEGIN IMMEDIATE), False for deferred transactions, None for
    a connection whose transactions the caller begins and ends on the driver itself. ``checkpoint``
    False: its commits never checkpoint the WAL (another connection does)."""
    engine = create_engine(
        normalise_url(url),
        isolation_level="AUTOCOMMIT" if writer is None else None,
        # One connection per engine: the writer engine is used by the single writer thread, the
        # reader engine by the event loop's thread only.
        pool_size=1,
        max_overflow=0,
        connect_args={"check_same_thread": False},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let the "begin" event below decide how transactions start.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        if not checkpoint:
            cursor.execute("PRAGMA wal_autocheckpoint=0")
        cursor.close()

    if writer is not None:

        @event.listens_for(engine, "begin")
        def _on_begin(connection: Any) -> None:
            # Writers take the write lock up front: a deferred transaction that reads then writes
            # can fail with SQLITE_BUSY mid-way instead of waiting, which breaks atomic balance checks.
            connection.exec_driver_sql("BEGIN IMMEDIATE" if writer else "BEGIN")

    return engine


@dataclass(frozen=True, slots=True)
class PgTimeouts:
    """The bounds on every wait for PostgreSQL, so that no request outlives a database that is
    gone: past one of them the caller gets ``ServiceUnavailable`` (the API's retryable 503)."""

    #: Opening a connection (TCP, TLS, authentication). A refused or closed port fails at once;
    #: this bounds a server that does not answer at all.
    connect_s: float = 5.0
    #: Waiting for a pooled connection when every one is in use.
    pool_s: float = 5.0
    #: One statement, measured by the client (a server that stopped answering mid-query); 0: none.
    statement_s: float = 30.0

    def connect_args(self) -> dict[str, Any]:
        """asyncpg's ``connect`` arguments for these bounds."""
        return {"timeout": self.connect_s, "command_timeout": self.statement_s or None}


def create_postgres_engine(url: str, *, pool_size: int = 10, timeouts: PgTimeouts | None = None) -> AsyncEngine:
    bounds = timeouts or PgTimeouts()
    # No pool_pre_ping: PostgresStore pings only connections that sat idle (see there).
    return create_async_engine(
        normalise_url(url), pool_size=pool_size, max_overflow=pool_size, pool_timeout=bounds.pool_s,
        connect_args=bounds.connect_args(),
    )
