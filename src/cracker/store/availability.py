"""Which database failures are the client's to retry: busy or unreachable is ``service_unavailable``."""

from __future__ import annotations

import sqlite3

from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from cracker.domain.errors import ServiceUnavailable
from cracker.store.errors import ConstraintViolation

_SQLITE_TRANSIENT = ("database is locked", "database is busy", "unable to open", "disk i/o error")


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
    if isinstance(exc, OSError) or (isinstance(exc, DBAPIError) and exc.connection_invalidated):
        raise ServiceUnavailable("The database is unreachable; retry shortly") from exc
    if isinstance(exc, OperationalError | InterfaceError):
        text = str(exc.orig).lower()
        if any(marker in text for marker in _SQLITE_TRANSIENT):
            raise ServiceUnavailable("The database is busy; retry shortly") from exc
        if "sqlite" not in type(exc.orig).__module__:
            raise ServiceUnavailable("The database is unavailable; retry shortly") from exc
