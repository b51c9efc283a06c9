"""Which database failures are the client's to retry: busy or unreachable is ``service_unavailable``."""

from __future__ import annotations

import logging
import sqlite3
import time

import asyncpg
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from cracker.domain.errors import ServiceUnavailable
from cracker.store.errors import ConstraintViolation

log = logging.getLogger("cracker.store")

#: Another connection holds the file lock (SQLITE_BUSY): the store's loop writer hands off on it.
SQLITE_BUSY = ("database is locked", "database is busy")
#: SQLite cannot write the file at all: the disk is full (SQLITE_FULL), the file or its folder is
#: read-only (SQLITE_READONLY, or SQLITE_IOERR when a write through an open descriptor is refused),
#: or it cannot be opened. Nothing was written (the transaction rolled back); the condition is an
#: operator's to clear, after which the next write succeeds: retryable, and logged for them.
_SQLITE_UNWRITABLE = (
    "database or disk is full", "readonly database", "disk i/o error", "unable to open", "read-only",
)
#: Failures of the database itself rather than of one statement: SQLite may have rolled the whole
#: transaction back (a full disk does), so a group of units of work fails as one (store.sqlite).
SQLITE_DATABASE_FAILURES = (*SQLITE_BUSY, *_SQLITE_UNWRITABLE, "malformed", "not a database")
#: An unwritable database is logged at most this often (every request meets it meanwhile).
_UNWRITABLE_LOG_EVERY_S = 10.0
_last_unwritable_log = 0.0


def _sqlite_unavailable(exc: BaseException, text: str) -> ServiceUnavailable | None:
    """The retryable error for a SQLite failure the operator or time clears, else None."""
    global _last_unwritable_log
    if any(marker in text for marker in SQLITE_BUSY):
        return ServiceUnavailable("The database is busy; retry shortly")
    if any(marker in text for marker in _SQLITE_UNWRITABLE):
        if time.monotonic() - _last_unwritable_log >= _UNWRITABLE_LOG_EVERY_S:
            _last_unwritable_log = time.monotonic()
            log.error("the SQLite database cannot be written (%s): free disk space or make the file and its "
                      "folder writable; requests that write are answered 503 until then", exc)
        return ServiceUnavailable("The database cannot be written right now; retry later")
    return None


#: SQLSTATEs of a PostgreSQL server that is gone, going, starting, fenced off or full: class 08
#: (connection exception), admin/crash shutdown and "cannot connect now" (57P01-57P03), too many
#: connections (53300), and a connection refused by pg_hba.conf or its authentication (28000,
#: 28P01): a process that connected before and is refused now meets an operator's fence, not a bug.
_PG_UNAVAILABLE_STATES = frozenset({"57P01", "57P02", "57P03", "53300", "28000", "28P01"})


def _causes(exc: BaseException) -> list[BaseException]:
    """The exception and what it wraps: SQLAlchemy's ``orig``, its asyncpg adapter's
    ``driver_exception``, and the ``raise ... from`` chain."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain and len(chain) < 8:
        chain.append(current)
        nested = getattr(current, "orig", None) or getattr(current, "driver_exception", None)
        current = nested if isinstance(nested, BaseException) else current.__cause__
    return chain


def is_unreachable(exc: BaseException) -> bool:
    """The PostgreSQL server cannot be used right now: the connection broke or was refused, the
    server is shutting down or starting up, or a connect or pool wait ran out (TimeoutError is
    an OSError)."""
    for cause in _causes(exc):
        # InternalClientError: asyncpg's protocol state broke because the server ended the
        # session between two statements ("cannot switch to state ...; another operation is in
        # progress"); the connection is dead.
        if isinstance(
            cause, OSError | asyncpg.InterfaceError | asyncpg.PostgresConnectionError | asyncpg.InternalClientError
        ):
            return True
        state = getattr(cause, "sqlstate", None)
        if isinstance(state, str) and (state.startswith("08") or state in _PG_UNAVAILABLE_STATES):
            return True
    return False


def raise_store_error(exc: BaseException) -> None:
    """Turn a driver's exception into the store's own, where it is one the caller may act on.

    The database being busy or unreachable is ``ServiceUnavailable`` (retryable); a broken
    constraint is ``ConstraintViolation``. Anything else (a missing table, say) is a bug or a broken
    install: this returns, and the caller re-raises it as an internal error.
    """
    if isinstance(exc, IntegrityError):
        raise ConstraintViolation(str(exc.orig)) from exc
    if isinstance(exc, PoolTimeout):
        raise ServiceUnavailable("The database is saturated; retry shortly") from exc
    if isinstance(exc, sqlite3.IntegrityError):  # the task path's statements run on the driver
        raise ConstraintViolation(str(exc)) from exc
    if isinstance(exc, sqlite3.Error):  # raised by the driver directly (BEGIN, COMMIT, hot reads)
        unavailable = _sqlite_unavailable(exc, str(exc).lower())
        if unavailable is not None:
            raise unavailable from exc
        return
    if (
        isinstance(exc, OSError) or (isinstance(exc, DBAPIError) and exc.connection_invalidated)
        or is_unreachable(exc)
    ):
        raise ServiceUnavailable("The database is unreachable; retry shortly") from exc
    if isinstance(exc, OperationalError | InterfaceError):
        if "sqlite" in type(exc.orig).__module__:
            unavailable = _sqlite_unavailable(exc.orig or exc, str(exc.orig).lower())
            if unavailable is not None:
                raise unavailable from exc
        else:
            raise ServiceUnavailable("The database is unavailable; retry shortly") from exc
