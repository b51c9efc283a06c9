"""Which database failures are the client's to retry: busy or unreachable is ``service_unavailable``."""

from __future__ import annotations

import sqlite3

import asyncpg
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from cracker.domain.errors import ServiceUnavailable
from cracker.store.errors import ConstraintViolation

_SQLITE_TRANSIENT = ("database is locked", "database is busy", "unable to open", "disk i/o error")

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
    if isinstance(exc, sqlite3.Error):  # raised by the driver directly (BEGIN, COMMIT, hot reads)
        if any(marker in str(exc).lower() for marker in _SQLITE_TRANSIENT):
            raise ServiceUnavailable("The database is busy; retry shortly") from exc
        return
    if (
        isinstance(exc, OSError) or (isinstance(exc, DBAPIError) and exc.connection_invalidated)
        or is_unreachable(exc)
    ):
        raise ServiceUnavailable("The database is unreachable; retry shortly") from exc
    if isinstance(exc, OperationalError | InterfaceError):
        text = str(exc.orig).lower()
        if any(marker in text for marker in _SQLITE_TRANSIENT):
            raise ServiceUnavailable("The database is busy; retry shortly") from exc
        if "sqlite" not in type(exc.orig).__module__:
            raise ServiceUnavailable("The database is unavailable; retry shortly") from exc
