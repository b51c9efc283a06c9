"""The tables the code describes (``schema.py``, which its Core statements are built from) are
the tables the migrations build, indexes included, on both stores.

Nothing else compares them: a migration that adds or drops an index without the same change in
``schema.py`` (or the reverse) would leave the code reasoning about a database that does not exist.
"""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, create_engine
from sqlalchemy.ext.asyncio import create_async_engine

from cracker.store.engines import normalise_url
from cracker.store.schema import metadata


def _differences(conn: Connection) -> list[Any]:
    context = MigrationContext.configure(conn, opts={"compare_type": False})
    # Alembic's own bookkeeping table is not the application's.
    return [d for d in compare_metadata(context, metadata)
            if not (d[0] == "remove_table" and d[1].name == "alembic_version")]


def test_schema_py_describes_the_migrated_sqlite_database(sqlite_url: str) -> None:
    engine = create_engine(sqlite_url)
    try:
        with engine.connect() as conn:
            assert _differences(conn) == []
    finally:
        engine.dispose()


async def test_schema_py_describes_the_migrated_postgresql_database(postgres_url: str) -> None:
    engine = create_async_engine(normalise_url(postgres_url))
    try:
        async with engine.connect() as conn:
            assert await conn.run_sync(_differences) == []
    finally:
        await engine.dispose()
