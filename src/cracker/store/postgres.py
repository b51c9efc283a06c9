"""The PostgreSQL store: the same synchronous units of work, run over asyncpg with ``run_sync``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine

from cracker.store.engines import create_postgres_engine
from cracker.store.sql import Reader, Store, Writer, raise_if_unavailable

T = TypeVar("T")


class PostgresStore(Store):
    dialect = "postgresql"

    def __init__(self, url: str) -> None:
        self._engine: AsyncEngine = create_postgres_engine(url)

    async def read(self, work: Callable[[Reader], T]) -> T:
        try:
            async with self._engine.connect() as conn:
                result = await conn.run_sync(lambda sync_conn: work(Reader(sync_conn)))
                await conn.rollback()
                return result
        except (DBAPIError, OSError, PoolTimeout) as exc:
            raise_if_unavailable(exc)
            raise

    async def write(self, work: Callable[[Writer], T]) -> T:
        try:
            async with self._engine.begin() as conn:
                return await conn.run_sync(lambda sync_conn: work(Writer(sync_conn)))
        except (DBAPIError, OSError, PoolTimeout) as exc:
            raise_if_unavailable(exc)
            raise

    async def close(self) -> None:
        await self._engine.dispose()
