"""Storage: the ``Store`` contract, its SQLite and PostgreSQL implementations, and the units of work.

Callers open a store with ``open_store`` and use its methods for the per-task operations, or run
a unit of work (a function over a ``Reader`` or ``Writer``, composed from the functions of
``leases``, ``webhooks``, ``idempotency``, ``retention`` and ``audit``) for the rest. They catch
the store's errors (``StoreError`` and its subclasses), never the database driver's.
"""

from cracker.store.engines import PgTimeouts
from cracker.store.errors import ConstraintViolation, IdempotencyKeyTaken, StoreError
from cracker.store.factory import open_store
from cracker.store.interface import IdempotencyKey, NewTask, Rejection, Store
from cracker.store.units import Reader, Writer

__all__ = [
    "ConstraintViolation",
    "IdempotencyKey",
    "IdempotencyKeyTaken",
    "NewTask",
    "PgTimeouts",
    "Reader",
    "Rejection",
    "Store",
    "StoreError",
    "Writer",
    "open_store",
]
