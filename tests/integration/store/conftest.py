"""The store suite runs on SQLite and on a real PostgreSQL server.

PostgreSQL: ``CRACKER_TEST_POSTGRES_URL`` (default: the local server's ``test`` database) is the
maintenance connection; the suite creates its own database ``cracker_test_<random>`` from it,
migrates it, and drops it at the end, so that concurrent runs never collide. Where the server
cannot be reached the PostgreSQL half is skipped with the reason, except in CI (``CI`` set), where
it fails: CI must prove both stores.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from cracker.store import Store, open_store
from cracker.store.migrate import migrate
from tests.conftest import fresh_postgres_database

from .contract.helpers import empty


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh, migrated database for this test session; dropped afterwards."""
    with fresh_postgres_database() as url:
        migrate(url)
        yield url


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


