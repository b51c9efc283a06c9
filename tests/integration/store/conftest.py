"""The store suite runs on SQLite and on a real PostgreSQL server.

PostgreSQL: ``CRACKER_TEST_POSTGRES_URL`` (default: the local server's ``test`` database) is the
maintenance connection; the suite creates its own database ``cracker_test_<random>`` from it,
migrates it, and drops it at the end, so that concurrent runs never collide. Where the server
cannot be reached the PostgreSQL half is skipped with the reason, except in CI (``CI`` set), where
it fails: CI must prove both stores.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest

from cracker.store import Store, open_store
from cracker.store.migrate import migrate
from cracker.store.notify import asyncpg_dsn

from .contract.helpers import empty

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


def postgres_admin_url() -> str:
    return os.environ.get("CRACKER_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(postgres_admin_url()), timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _unreachable(reason: str) -> None:
    message = f"PostgreSQL at {postgres_admin_url()} is unreachable ({reason}); set CRACKER_TEST_POSTGRES_URL"
    if os.environ.get("CI"):
        pytest.fail(f"{message}. CI must run the store suite on PostgreSQL.", pytrace=False)
    pytest.skip(f"{message}: PostgreSQL store tests skipped")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh, migrated database for this test session; dropped afterwards."""
    name = f"cracker_test_{secrets.token_hex(4)}"
    try:
        asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        _unreachable(f"{type(exc).__name__}: {exc}")
    from sqlalchemy.engine import make_url

    url = make_url(postgres_admin_url()).set(database=name).render_as_string(hide_password=False)
    try:
        migrate(url)
        yield url
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('store') / 'store.db'}"
    migrate(url)
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest) -> str:
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    """A store over an emptied database (offers kept): each test starts from no tasks, no accounts."""
    opened = open_store(store_url)
    await empty(opened)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def second_store(store_url: str) -> AsyncIterator[Store]:
    """Another store on the same database, as another process would open it."""
    opened = open_store(store_url)
    try:
        yield opened
    finally:
        await opened.close()


def is_postgres(url: str) -> bool:
    return url.startswith("postgresql")


