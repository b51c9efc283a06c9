"""Opening the store a database URL names."""

from __future__ import annotations

from cracker.store.engines import PgTimeouts, is_sqlite
from cracker.store.interface import Store
from cracker.store.postgres import PostgresStore
from cracker.store.sqlite import SqliteStore


def open_store(url: str, *, sqlite_busy_timeout_ms: int = 5_000, pg_timeouts: PgTimeouts | None = None) -> Store:
    if is_sqlite(url):
        return SqliteStore(url, busy_timeout_ms=sqlite_busy_timeout_ms)
    return PostgresStore(url, timeouts=pg_timeouts)
