"""Which database failures the store answers ``ServiceUnavailable`` (the API's retryable 503).

Protects the mapping that a PostgreSQL restart or refusal and a full or read-only SQLite file rely
on: before it, a connection refused by pg_hba.conf, asyncpg's broken-protocol error after a
terminated session, and SQLITE_FULL reached the client as 500 ``internal_error``.
"""

from __future__ import annotations

import sqlite3

import asyncpg
import pytest
from sqlalchemy.exc import DBAPIError, OperationalError, ProgrammingError

from cracker.domain.errors import ServiceUnavailable
from cracker.store.availability import is_unreachable, raise_store_error
from cracker.store.errors import ConstraintViolation


def _wrapped(orig: Exception) -> DBAPIError:
    """As SQLAlchemy's asyncpg dialect raises it: a DBAPIError over an adapter error over the driver's."""
    adapter = Exception(str(orig))
    adapter.__cause__ = orig
    return DBAPIError("SELECT 1", None, adapter)


@pytest.mark.parametrize("orig", [
    asyncpg.InvalidAuthorizationSpecificationError("pg_hba.conf rejects connection"),  # 28000: fenced off
    asyncpg.CannotConnectNowError("the database system is starting up"),  # 57P03
    asyncpg.AdminShutdownError("terminating connection due to administrator command"),  # 57P01
    asyncpg.TooManyConnectionsError("sorry, too many clients already"),  # 53300
    asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),  # 08003
    asyncpg.InterfaceError("connection is closed"),
    asyncpg.InternalClientError("cannot switch to state 12; another operation (2) is in progress"),
    ConnectionRefusedError(111, "Connection refused"),
    TimeoutError(),
])
def test_postgres_outages_are_unavailable(orig: Exception) -> None:
    assert is_unreachable(orig)
    assert is_unreachable(_wrapped(orig))
    with pytest.raises(ServiceUnavailable):
        raise_store_error(_wrapped(orig))


@pytest.mark.parametrize("orig", [
    asyncpg.UndefinedTableError('relation "tasks" does not exist'),  # a broken install: a 500
    asyncpg.SyntaxOrAccessError("syntax error"),
])
def test_bugs_stay_bugs(orig: Exception) -> None:
    assert not is_unreachable(_wrapped(orig))
    raise_store_error(ProgrammingError("SELECT 1", None, orig))  # returns: the caller re-raises it


@pytest.mark.parametrize("message", [
    "database or disk is full", "attempt to write a readonly database", "disk I/O error", "database is locked",
])
def test_sqlite_unwritable_or_busy_is_unavailable(message: str) -> None:
    with pytest.raises(ServiceUnavailable):
        raise_store_error(sqlite3.OperationalError(message))
    with pytest.raises(ServiceUnavailable):
        raise_store_error(OperationalError("INSERT", None, sqlite3.OperationalError(message)))


def test_sqlite_bug_is_not_unavailable() -> None:
    raise_store_error(sqlite3.OperationalError("no such table: tasks"))  # returns: a 500


def test_a_broken_constraint_from_the_sqlite_driver_is_a_constraint_violation() -> None:
    # The task path's statements run on the sqlite3 driver itself (store/sqlite_sql.py): a
    # duplicate ledger row or idempotency key must reach the store as the same ConstraintViolation
    # that SQLAlchemy's IntegrityError gives, not as a 500.
    with pytest.raises(ConstraintViolation):
        raise_store_error(sqlite3.IntegrityError("UNIQUE constraint failed: ledger.task_id, ledger.kind"))
