"""Database URLs and engines: SQLite gets WAL, a busy timeout and one writer connection per process."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool


def normalise_url(url: str) -> str:
    """Accept the plain URLs operators write and pick the async driver for each database."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite").render_as_string(hide_password=False)
    if backend in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)
    raise ValueError(f"unsupported database URL {parsed.render_as_string()!r}: use sqlite:// or postgresql://")


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def _sqlite_pragmas(engine: AsyncEngine, *, writer: bool, busy_timeout_ms: int) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below decide how transactions start.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Writers take the write lock up front: a deferred transaction that reads then writes can
        # fail with SQLITE_BUSY mid-way instead of waiting, which breaks atomic balance checks.
        connection.exec_driver_sql("BEGIN IMMEDIATE" if writer else "BEGIN")


def create_engines(url: str, *, sqlite_busy_timeout_ms: int = 5_000) -> tuple[AsyncEngine, AsyncEngine]:
    """(writer, reader) engines. On PostgreSQL both are the same pooled engine."""
    url = normalise_url(url)
    if is_sqlite(url):
        # One writer connection per process: SQLite serialises writers anyway, and a single
        # connection queues them in-process instead of spinning on the file lock.
        writer = create_async_engine(url, pool_size=1, max_overflow=0, pool_timeout=30)
        reader = create_async_engine(url, pool_size=4, max_overflow=4)
        if ":memory:" in url or make_url(url).database in (None, ""):
            raise ValueError("an in-memory SQLite database cannot be shared; give a file path")
        _sqlite_pragmas(writer, writer=True, busy_timeout_ms=sqlite_busy_timeout_ms)
        _sqlite_pragmas(reader, writer=False, busy_timeout_ms=sqlite_busy_timeout_ms)
        return writer, reader
    engine = create_async_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True)
    return engine, engine


def create_migration_engine(url: str) -> AsyncEngine:
    return create_async_engine(normalise_url(url), poolclass=NullPool)
