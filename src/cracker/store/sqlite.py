"""The SQLite store: the per-task writes and the reads run on the event loop; the rest on one thread.

SQLite serialises writers anyway, so the writes are queued and run in groups, each group one
transaction (group commit) begun and ended on the driver (``BEGIN IMMEDIATE`` takes the write lock
up front); SQLAlchemy's own transaction and pool bookkeeping cost more than a SQLite write.

The per-task operations (create, claim, completion, rejection) are a few indexed statements each,
and run on the event loop's thread, grouped per loop turn. On a writer thread each statement cost
4-5x its own CPU time: every ``execute`` releases the GIL and must take it back from the busy
event loop, and each group's result crossed back to the loop by its self-pipe
(bench/RESULTS.md, "Per-task writes on the event loop"). The loop never waits for the file
lock: its connection's busy timeout is zero, and a group that finds the lock taken (another
process, or the thread's connection) goes to the writer thread, which waits for it. Checkpoints,
which copy and fsync, run on the thread too. The cold units of work (accounts, webhooks, retention,
model files) keep the writer thread: they may be long, and the loop must stay responsive.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from typing import Any, TypeVar

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from cracker.domain.tasks import ClaimedTask, Task, TaskView
from cracker.domain.workers import Completion
from cracker.store import sqlite_sql, sqlite_tasks
from cracker.store.availability import SQLITE_BUSY, SQLITE_DATABASE_FAILURES, raise_store_error
from cracker.store.engines import create_sqlite_engine
from cracker.store.errors import ConstraintViolation, IdempotencyKeyTaken
from cracker.store.interface import NewTask, Rejection, Store
from cracker.store.rows import view_from_row
from cracker.store.units import GET_TASK_VIEW_SQLITE, Reader, Writer

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
        # Units of work waiting for the writer thread, which takes them in groups (group commit:
        # one transaction, one commit and one hop back to the event loop for many writes).
        self._queue: deque[_Queued] = deque()
        self._queue_lock = threading.Lock()
        self._draining = False
        # The per-task writes on the event loop: their own connection, which never waits for the
        # lock and never checkpoints (see the module's docstring).
        self._loop_writer = create_sqlite_engine(url, writer=None, busy_timeout_ms=0, checkpoint=False)
        self._loop_conn: Connection | None = None
        self._loop_queue: deque[_Queued] = deque()
        self._loop_drain_scheduled = False
        self._loop_waits_for_thread = False
        self._commits_since_checkpoint = 0
        self._checkpoint_due = False

    # --- the per-task operations: units of work (see sqlite_tasks), run on the loop ------------

    async def create_task(self, new: NewTask) -> Task | None:
        try:
            return await self._write_on_loop(lambda tx: sqlite_tasks.create(tx, new))
        except ConstraintViolation as exc:
            # The task id is fresh and its ledger row new: only the client's key can collide.
            if new.idempotency is None:
                raise
            raise IdempotencyKeyTaken(new.idempotency.key) from exc

    async def claim_tasks(
        self, types: Sequence[str], owner: str, limit: int, lease_s: float, now: float, *, builtin_only: bool = False,
        accounts: Sequence[str] | None = None, max_running_per_account: int = 0,
    ) -> list[ClaimedTask]:
        if not types or limit <= 0 or not self._any_pending(types, builtin_only):
            return []
        return await self._write_on_loop(
            lambda tx: sqlite_tasks.claim(
                tx, types, owner, limit, lease_s, now, builtin_only, max_running_per_account, accounts
            )
        )

    async def complete_tasks(self, items: Sequence[Completion], now: float) -> list[Task]:
        if not items:
            return []
        return await self._write_on_loop(lambda tx: sqlite_tasks.complete(tx, items, now))

    async def reject_task(
        self, task_id: str, rejection: Rejection, now: float, *, fence: tuple[str, int] | None = None
    ) -> Task | None:
        return await self._write_on_loop(lambda tx: sqlite_tasks.reject(tx, task_id, rejection, now, fence))

    async def reject_overdue(self, rejection: Rejection, now: float, limit: int) -> list[Task]:
        return await self.write(lambda tx: sqlite_tasks.reject_overdue(tx, rejection, now, limit))

    async def get_task_view(self, task_id: str) -> TaskView | None:
        # Every poll reads this: one statement, so no BEGIN/ROLLBACK around it (a single SELECT is
        # its own snapshot), straight on the driver.
        row = self._read_row(GET_TASK_VIEW_SQLITE, (task_id,))
        return view_from_row(row) if row is not None else None

    def _read_row(self, sql: str, parameters: tuple[Any, ...]) -> Any:
        """One statement's first row, on the driver of the held-open read connection."""
        try:
            if self._read_driver is None:
                self._open_reader()
            return self._read_driver.execute(sql, parameters).fetchone()
        except (DBAPIError, OSError, PoolTimeout, sqlite3.Error) as exc:
            self._drop_read_conn()
            raise_store_error(exc)
            raise

    def _any_pending(self, types: Sequence[str], builtin_only: bool) -> bool:
        """Whether a claim could find anything: one indexed read on the event loop. Every wake-up
        of every worker lane (a create of any type, a slot freed) claims, and most find nothing
        (bench/create_profile.py: the claim was half the writer thread's time); an empty claim
        need not take the writer's turn. A task committed before the wake-up is seen here."""
        return self._read_row(sqlite_sql.any_pending(len(types), builtin_only), tuple(types)) is not None

    # --- units of work ------------------------------------------------------------------------

    async def read(self, work: Callable[[Reader], T]) -> T:
        try:
            if self._read_conn is None:
                self._open_reader()
            conn, raw = self._read_conn, self._read_driver
            assert conn is not None and raw is not None
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

    def _open_reader(self) -> None:
        self._read_conn = self._reader.connect()
        self._read_driver = self._read_conn.connection.driver_connection

    def _drop_read_conn(self) -> None:
        if self._read_conn is not None:
            self._read_conn.invalidate()
            self._read_conn.close()
            self._read_conn = self._read_driver = None

    async def write(self, work: Callable[[Writer], T]) -> T:
        """Queue ``work``; the writer thread runs what is queued together (group commit)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue_for_thread([(work, future)], loop)
        result: T = await future
        return result

    def _queue_for_thread(self, units: list[_Queued], loop: asyncio.AbstractEventLoop) -> None:
        with self._queue_lock:
            self._queue.extend(units)
            start = not self._draining
            self._draining = True
        if start:
            self._write_thread.submit(self._drain, loop)

    def _drain(self, loop: asyncio.AbstractEventLoop) -> None:
        """Run the queued units of work, up to _GROUP at a time, each group in one transaction,
        until the queue is empty. Called on the writer thread."""
        while True:
            with self._queue_lock:
                checkpoint, self._checkpoint_due = self._checkpoint_due, False
                group = [] if checkpoint else [self._queue.popleft() for _ in range(min(_GROUP, len(self._queue)))]
                if not group and not checkpoint:
                    self._draining = False
                    if self._loop_waits_for_thread:
                        self._loop_waits_for_thread = False
                        loop.call_soon_threadsafe(self._drain_on_loop, loop)
                    return
            if checkpoint:
                self._checkpoint()
                continue
            try:
                outcomes = self._run_group(group)
            except BaseException as exc:
                outcomes = [(future, None, exc) for _work, future in group]
            loop.call_soon_threadsafe(_deliver, outcomes)

    def _run_group(self, group: list[_Queued]) -> list[_Outcome]:
        """The writer thread's group: it waits for the write lock (the busy timeout)."""
        try:
            if self._write_conn is None:
                self._write_conn = self._writer.connect()
            conn, raw = _with_driver(self._write_conn)
            raw.execute("BEGIN IMMEDIATE")
            outcomes = _run_in_transaction(group, conn, raw)
            assert outcomes is not None
            return outcomes
        except (DBAPIError, OSError, PoolTimeout, sqlite3.Error) as exc:
            self._drop_write_conn()  # a fresh connection next time, whatever state this one is in
            failure = _store_error(exc)
            return [(future, None, failure) for _work, future in group]

    # --- the per-task writes, on the event loop ----------------------------------------------

    async def _write_on_loop(self, work: Callable[[Writer], T]) -> T:
        """Queue ``work`` for the event loop's next turn, which runs what this one queued as one group."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._loop_queue.append((work, future))
        if not self._loop_drain_scheduled:
            self._loop_drain_scheduled = True
            loop.call_soon(self._drain_on_loop, loop)
        result: T = await future
        return result

    def _drain_on_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop_drain_scheduled = False
        with self._queue_lock:
            if self._draining:
                # The writer thread holds the lock (or soon will): its drain ends with a call back.
                self._loop_waits_for_thread = True
                return
        while self._loop_queue:
            group = [self._loop_queue.popleft() for _ in range(min(_GROUP, len(self._loop_queue)))]
            outcomes = self._run_group_on_loop(group)
            if outcomes is None:
                # Another connection holds the write lock: the writer thread waits for it, for all of them.
                group.extend(self._loop_queue)
                self._loop_queue.clear()
                self._queue_for_thread(group, loop)
                return
            _deliver(outcomes)
            self._commits_since_checkpoint += 1
            if self._commits_since_checkpoint >= _CHECKPOINT_EVERY:
                self._commits_since_checkpoint = 0
                self._queue_checkpoint(loop)
                return  # the rest waits for the thread's call back

    def _run_group_on_loop(self, group: list[_Queued]) -> list[_Outcome] | None:
        """The group's outcomes; None, with nothing done, when the write lock is taken."""
        try:
            if self._loop_conn is None:
                self._loop_conn = self._loop_writer.connect()
            conn, raw = _with_driver(self._loop_conn)
            # The per-task units only write the database, so they can run twice: first all in
            # one go, and only if one of them raises (rare: an Idempotency-Key taken meanwhile),
            # all rolled back and run again, each in its savepoint. A savepoint costs its two
            # statements and a copy of each page the unit touches first (a third of an insert).
            for savepoints in (len(group) == 1, True):
                try:
                    raw.execute("BEGIN IMMEDIATE")
                except sqlite3.OperationalError as exc:
                    if _is_busy(exc):
                        return None
                    raise
                outcomes = _run_in_transaction(group, conn, raw, savepoints=savepoints)
                if outcomes is not None:
                    return outcomes
            raise AssertionError("a group run with savepoints always has its outcomes")
        except (DBAPIError, OSError, PoolTimeout, sqlite3.Error) as exc:
            if self._loop_conn is not None:
                self._loop_conn.invalidate()
                self._loop_conn.close()
                self._loop_conn = None
            failure = _store_error(exc)
            return [(future, None, failure) for _work, future in group]
        except BaseException as exc:
            return [(future, None, exc) for _work, future in group]

    def _queue_checkpoint(self, loop: asyncio.AbstractEventLoop) -> None:
        """Have the writer thread checkpoint before its next group. Meanwhile the loop's writes
        wait for the thread (it is draining): a checkpoint that ran beside them would never catch
        up with their commits, and SQLite starts the WAL over only after one that did."""
        with self._queue_lock:
            self._checkpoint_due = True
            self._loop_waits_for_thread = True  # for what is still queued on the loop
            start = not self._draining
            self._draining = True
        if start:
            self._write_thread.submit(self._drain, loop)

    def _checkpoint(self) -> None:
        """On the writer thread: copy the committed pages into the database file (its fsync is why
        it is not run on the loop)."""
        try:
            if self._write_conn is None:
                self._write_conn = self._writer.connect()
            _conn, raw = _with_driver(self._write_conn)
            raw.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except (DBAPIError, OSError, PoolTimeout, sqlite3.Error) as exc:
            log.warning("a SQLite checkpoint failed (the next one retries): %s", exc)
            self._drop_write_conn()

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
        # Writes still queued on the loop (callers not answered yet) are written first; the
        # writer thread's queue runs before its close below (one thread, first in first out).
        queued = [future for _work, future in self._loop_queue]
        if queued:
            await asyncio.wait(queued, timeout=_CLOSE_WAIT_S)
        if self._loop_conn is not None:
            self._loop_conn.close()
            self._loop_conn = None
        self._loop_writer.dispose()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._write_thread, self._close_writer)
        self._write_thread.shutdown(wait=True)
        if self._read_conn is not None:
            self._read_conn.close()
            self._read_conn = None
        self._reader.dispose()


#: The most units of work one transaction of the writer takes (group commit).
_GROUP = 128
#: The loop's commits between two checkpoints: about SQLite's own 1,000 pages (wal_autocheckpoint),
#: at 13-15 pages a commit of a few per-task units.
_CHECKPOINT_EVERY = 64
#: How long a close waits for the loop's queued writes.
_CLOSE_WAIT_S = 5.0
#: A unit of work and its caller's future.
_Queued = tuple[Callable[[Writer], Any], "asyncio.Future[Any]"]
#: (the caller's future, the result, the exception raised instead).
_Outcome = tuple["asyncio.Future[Any]", Any, BaseException | None]
log = logging.getLogger("cracker.store")


def _with_driver(conn: Connection) -> tuple[Connection, sqlite3.Connection]:
    """The connection and the ``sqlite3`` one under it, which the transactions are run on."""
    raw = conn.connection.driver_connection
    assert isinstance(raw, sqlite3.Connection)
    return conn, raw


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    return any(marker in str(exc) for marker in SQLITE_BUSY)


def _run_in_transaction(
    group: list[_Queued], conn: Connection, raw: sqlite3.Connection, *, savepoints: bool = True
) -> list[_Outcome] | None:
    """The group in the transaction begun on ``raw``, a savepoint per unit: a unit that raises
    rolls back its own writes alone and gets its exception; the others commit together. A failure
    of the database itself (the commit, I/O, a full disk) is raised: nothing of the group is written.
    Without ``savepoints``: if a unit raises, the whole transaction is rolled back and None returned."""
    outcomes: list[_Outcome] = []
    try:
        writer = Writer(conn)
        for work, future in group:
            if not savepoints or len(group) == 1:
                outcome = _run_unit(work, writer, future)
                if outcome[2] is not None and len(group) > 1:
                    raw.execute("ROLLBACK")
                    return None
                outcomes.append(outcome)
                continue
            raw.execute("SAVEPOINT unit")
            outcome = _run_unit(work, writer, future)
            if outcome[2] is not None:
                raw.execute("ROLLBACK TO unit")
            raw.execute("RELEASE unit")
            outcomes.append(outcome)
        if len(group) == 1 and outcomes[0][2] is not None:
            raw.execute("ROLLBACK")
        else:
            raw.execute("COMMIT")
    except BaseException:
        # SQLite may have rolled back already (SQLITE_FULL, an I/O error): then ROLLBACK
        # itself fails, and must not hide the error that matters.
        with suppress(sqlite3.Error):
            raw.execute("ROLLBACK")
        raise
    return outcomes


def _store_error(exc: BaseException) -> BaseException:
    """What the caller gets for a database error: the store's own exception where there is one."""
    try:
        raise_store_error(exc)
    except Exception as mapped:
        return mapped
    return exc


def _fails_the_group(exc: BaseException) -> bool:
    if isinstance(exc, OSError | PoolTimeout):
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        exc = exc.orig if isinstance(exc.orig, BaseException) else exc
    text = str(exc).lower()
    return isinstance(exc, sqlite3.Error) and any(marker in text for marker in SQLITE_DATABASE_FAILURES)


def _run_unit(work: Callable[[Writer], Any], writer: Writer, future: asyncio.Future[Any]) -> _Outcome:
    """Run one unit; what it raises is its own outcome (its savepoint is rolled back), unless the
    database itself failed: that is raised on, to fail the group."""
    try:
        return (future, work(writer), None)
    except Exception as exc:
        if _fails_the_group(exc):
            raise
        if isinstance(exc, DBAPIError | sqlite3.Error):
            return (future, None, _store_error(exc))
        return (future, None, exc)


def _deliver(outcomes: list[_Outcome]) -> None:
    """On the event loop: settle each caller's future (a cancelled caller's is left alone)."""
    for future, result, error in outcomes:
        if future is None or future.done():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)
