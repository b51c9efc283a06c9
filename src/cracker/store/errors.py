"""The store's exceptions: callers catch these, never the database driver's.

A database that is busy or unreachable is the domain's ``ServiceUnavailable`` (retryable, the
API's 503), raised by the store as is; anything else that goes wrong below is a bug or a broken
install and stays the driver's error (an internal error).
"""

from __future__ import annotations


class StoreError(Exception):
    """Base of the errors the store raises on purpose."""


class ConstraintViolation(StoreError):
    """A write broke a constraint (a unique key): the whole unit of work was rolled back.

    The ledger's unique (task, kind) makes a second settlement of one task raise this.
    """


class IdempotencyKeyTaken(ConstraintViolation):
    """A create named an Idempotency-Key that a live key of the account already holds (a
    concurrent or earlier create): nothing was written; look the key up to answer as it did."""
