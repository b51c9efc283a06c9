"""The SQLite store: one writer thread owns the one write connection; reads run on the event loop.

SQLite serialises writers anyway, so queueing them on one thread costs nothing while spinning on
the file lock would. Each unit of work is one transaction begun and ended on the driver (``BEGIN
IMMEDIATE`` takes the write lock up front); SQLAlchemy's own transaction and pool bookkeeping
cost more than a SQLite write.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from cracker.domain.tasks import ClaimedTask, Task, TaskView
from cracker.domain.workers import Completion
from cracker.store import sqlite_tasks
from cracker.store.availability import raise_store_error
from cracker.store.engines import create_sqlite_engine
from cracker.store.errors import ConstraintViolation, IdempotencyKeyTaken
from cracker.store.interface import NewTask, Rejection, Store
from cracker.store.units import Reader, Writer

T = TypeVar("T")


class SqliteStore(Store):
    dialect = "sqlite"

    def __init__(self, url: str, *, busy_timeout_ms: int) -> None:
        self._writer = create_sqlite_engine(url, writer=None, busy_timeout_ms=busy_timeout_ms)
        self._write_conn: Connection | None = None
        # Reads run on the event loop's thread over one connection held open: a WAL read of an
        # indexed row from the page cache takes microseconds and never waits for a writer, while a
        # hand-off to a thread and back costs several times more, and so does a pool checkout with
        # SQLAlchemy's transaction events. Readers give up quickly if the file is ever locked
        # (WAL recovery).
        self._reader = create_sqlite_engine(url, writer=None, busy_timeout_ms=min(busy_timeout_ms, 200))
        self._read_conn: Connection | None = None
        self._read_driver: Any = None
        self._write_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cracker-sqlite-writer")

    # --- the per-task operations: units of work (see sqlite_tasks) ------------------------------

    async def create_task(self, new: NewTask) -> Task | None:
        try:
            return await self.write(lambda tx: sqlite_tasks.create(tx, new))
        except ConstraintViolation as exc:
            # The task id is fresh and its ledger row new: only the client's key can collide.
            if new.idempotency is None:
                raise
            raise IdempotencyKeyTaken(new.idempotency.key) from exc

    async def claim_tasks(
        self, types: Sequence[str], owner: str, limit: int, lease_s: float, now: float, *, builtin_only: bool = False,
        accounts: Sequence[str] | None = None, max_running_per_account: int = 0,
    ) -> list[ClaimedTask]:
        if not types or limit <= 0:
            return []
        return await self.write(
            lambda tx: sqlite_tasks.claim(
                tx, types, owner, limit, lease_s, now, builtin_only, max_running_per_account, accounts
            )
        )

    async def complete_tasks(self, items: Sequence[Completion], now: float) -> list[Task]:
        if not items:
            return []
        return await self.write(lambda tx: sqlite_tasks.complete(tx, items, now))

    async def reject_task(
        self, task_id: str, rejection: Rejection, now: float, *, fence: tuple[str, int] | None = None
    ) -> Task | None:
        return await self.write(lambda tx: sqlite_tasks.reject(tx, task_id, rejection, now, fence))

    async def reject_overdue(self, rejection: Rejection, now: float, limit: int) -> list[Task]:
        return await self.write(lambda tx: sqlite_tasks.reject_overdue(tx, rejection, now, limit))

    async def get_task_view(self, task_id: str) -> TaskView | None:
        return await self.read(lambda r: r.get_task_view(task_id))

    # --- units of work ------------------------------------------------------------------------

    async def read(self, work: Callable[[Reader], T]) -> T:
        try:
            if self._read_conn is None:
                self._read_conn = self._reader.connect()
                self._read_driver = self._read_conn.connection.driver_connection
            conn, raw = self._read_conn, self._read_driver
            assert raw is not None
            # One snapshot for the whole unit of work, begun and ended on the driver directly.
            raw.execute("BEGIN")
            try:
                return work(Reader(conn, raw))
            finally:
                raw.execute("ROLLBACK")
        except (DBAPIError, OSError, PoolTimeout, sqlite3.Error) as exc:
            self._drop_read_conn()  # a fresh connection next time, whatever state this one is in
            raise_store_error(exc)
            raise

    def _drop_read_conn(self) -> None:
        if self._read_conn is not None:
            self._read_conn.invalidate()
            self._read_conn.close()
            self._read_conn = self._read_driver = None

    async def write(self, work: Callable[[Writer], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._write_thread, self._write_now, work)

    def _write_now(self, work: Callable[[Writer], T]) -> T:
        try:
            if self._write_conn is None:
                self._write_conn = self._writer.connect()
            conn = self._write_conn
            raw = conn.connection.driver_connection
            assert raw is not None
            raw.execute("BEGIN IMMEDIATE")
            try:
                result = work(Writer(conn))
                raw.execute("COMMIT")
            except BaseException:
                # SQLite may have rolled back already (SQLITE_FULL, an I/O error): then ROLLBACK
                # itself fails, and must not hide the error that matters.
                with contextlib.suppress(sqlite3.Error):
                    raw.execute("ROLLBACK")
                raise
            return result
        except (DBAPIError, OSError, PoolTimeout, sqlite3.Error) as exc:
            if not isinstance(exc, DBAPIError) or exc.connection_invalidated or not _is_integrity(exc):
                self._drop_write_conn()  # a fresh connection next time, whatever state this one is in
            raise_store_error(exc)
            raise

    def _drop_write_conn(self) -> None:
        if self._write_conn is not None:
            self._write_conn.invalidate()
            self._write_conn.close()
            self._write_conn = None

    def _close_writer(self) -> None:
        if self._write_conn is not None:
            self._write_conn.close()
            self._write_conn = None
        self._writer.dispose()

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._write_thread, self._close_writer)
        self._write_thread.shutdown(wait=True)
        if self._read_conn is not None:
            self._read_conn.close()
            self._read_conn = None
        self._reader.dispose()


def _is_integrity(exc: DBAPIError) -> bool:
    return isinstance(exc.orig, sqlite3.IntegrityError)
