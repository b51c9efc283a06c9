"""The store: every SQL statement of the service, over SQLAlchemy Core, for SQLite and PostgreSQL.

The service layer opens a unit of work (``store.read()`` or ``store.write()``) and composes these
methods; a unit of work is one transaction.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import orjson
from sqlalchemy import Connection, and_, bindparam, func, insert, select, update
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from cracker.domain.accounts import ApiKeyRecord, Balance, Scope
from cracker.domain.errors import ServiceUnavailable
from cracker.domain.tasks import ClaimedTask, Task, TaskStatus, TaskView
from cracker.store.engines import create_sqlite_engine, is_sqlite
from cracker.store.hot_path import HotPath
from cracker.store.schema import accounts, api_keys, ledger, offers, tasks

_LIVE = (TaskStatus.PENDING.value, TaskStatus.RUNNING.value)
T = TypeVar("T")

# The hot statements are built once: executing a prebuilt statement skips SQLAlchemy's construction
# and hits its compiled-statement cache.
_GET_TASK = select(tasks).where(tasks.c.id == bindparam("task_id"))
_GET_TASK_VIEW = select(
    tasks.c.id, tasks.c.account_id, tasks.c.type, tasks.c.status, tasks.c.solution, tasks.c.error_code,
    tasks.c.error_message, tasks.c.cost, tasks.c.created_at, tasks.c.started_at, tasks.c.completed_at,
).where(tasks.c.id == bindparam("task_id"))
_GET_TASK_VIEW_SQLITE = str(_GET_TASK_VIEW.compile(dialect=sqlite_dialect.dialect()))
_GET_KEY = select(api_keys.c.id, api_keys.c.account_id, api_keys.c.key_hash, api_keys.c.scope).where(
    api_keys.c.key_hash == bindparam("key_hash"), api_keys.c.revoked_at.is_(None)
)
_GET_BALANCE = select(accounts.c.available, accounts.c.held).where(accounts.c.id == bindparam("account_id"))
_GET_PRICE = select(offers.c.price).where(offers.c.type == bindparam("task_type"), offers.c.enabled.is_(True))


def _dumps(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:
        # orjson stops at 64-bit integers; a vendor challenge may carry larger ones, echoed exactly.
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


_TASK_COLUMNS = [c.name for c in tasks.columns]
assert _TASK_COLUMNS[:18] == [
    "id", "account_id", "type", "status", "params", "solution", "error_code", "error_message", "price", "cost",
    "created_at", "started_at", "completed_at", "deadline_at", "lease_owner", "lease_expires_at", "attempts",
    "callback_url",
], "update _task_from_row with the tasks columns"


def _task_from_row(row: Any) -> Task:
    # Positional access: this runs on every task read, and the mapping view costs several times more.
    return Task(
        id=row[0],
        account_id=row[1],
        type=row[2],
        status=TaskStatus(row[3]),
        # The stdlib parser keeps integers of any size exact (orjson turns large ones into floats);
        # params are read by solvers only, never on the polling path.
        params=json.loads(row[4]),
        solution=orjson.loads(row[5]) if row[5] is not None else None,
        error_code=row[6],
        error_message=row[7],
        price=row[8],
        cost=row[9],
        created_at=row[10],
        started_at=row[11],
        completed_at=row[12],
        deadline_at=row[13],
        lease_owner=row[14],
        attempts=row[16],
        callback_url=row[17],
    )


def _view_from_row(row: Any) -> TaskView:
    """The columns of ``_GET_TASK_VIEW``, in its order."""
    return TaskView(
        id=row[0], account_id=row[1], type=row[2], status=TaskStatus(row[3]),
        solution=orjson.loads(row[4]) if row[4] is not None else None, error_code=row[5],
        error_message=row[6], cost=row[7], created_at=row[8], started_at=row[9], completed_at=row[10],
    )


class Reader:
    """Queries that read; usable inside a write unit too."""

    def __init__(self, conn: Connection, sqlite_driver: sqlite3.Connection | None = None) -> None:
        self.conn = conn
        # On SQLite the pollers' point read goes straight to the driver with SQL compiled once
        # from the same statement: SQLAlchemy's execution context costs 3x the read itself.
        self._sqlite = sqlite_driver

    def get_task(self, task_id: str) -> Task | None:
        row = self.conn.execute(_GET_TASK, {"task_id": task_id}).first()
        return _task_from_row(row) if row is not None else None

    def get_task_view(self, task_id: str) -> TaskView | None:
        """The client's view of a task (what every poll reads): no request params."""
        if self._sqlite is not None:
            row: Any = self._sqlite.execute(_GET_TASK_VIEW_SQLITE, (task_id,)).fetchone()
        else:
            row = self.conn.execute(_GET_TASK_VIEW, {"task_id": task_id}).first()
        return _view_from_row(row) if row is not None else None

    def get_api_key(self, key_hash: str) -> ApiKeyRecord | None:
        row = self.conn.execute(_GET_KEY, {"key_hash": key_hash}).first()
        if row is None:
            return None
        return ApiKeyRecord(id=row.id, account_id=row.account_id, key_hash=row.key_hash, scope=Scope(row.scope))

    def get_balance(self, account_id: str) -> Balance | None:
        row = self.conn.execute(_GET_BALANCE, {"account_id": account_id}).first()
        return Balance(available=row.available, held=row.held) if row is not None else None

    def list_offers(self, *, enabled_only: bool = True) -> list[tuple[str, int, bool]]:
        query = select(offers.c.type, offers.c.price, offers.c.enabled).order_by(offers.c.type)
        if enabled_only:
            query = query.where(offers.c.enabled.is_(True))
        return [(r.type, r.price, r.enabled) for r in self.conn.execute(query)]

    def get_offer_price(self, task_type: str) -> int | None:
        row = self.conn.execute(_GET_PRICE, {"task_type": task_type}).first()
        return row.price if row is not None else None

    def queue_depths(self) -> dict[tuple[str, str], int]:
        """(type, status) -> count of live tasks, for the metrics endpoint."""
        query = (
            select(tasks.c.type, tasks.c.status, func.count())
            .where(tasks.c.status.in_(_LIVE))
            .group_by(tasks.c.type, tasks.c.status)
        )
        return {(r[0], r[1]): r[2] for r in self.conn.execute(query)}

    def ledger_totals(self) -> dict[str, tuple[int, int]]:
        """account_id -> (sum of available deltas, sum of held deltas): what the balances must equal."""
        query = select(
            ledger.c.account_id, func.sum(ledger.c.available_delta), func.sum(ledger.c.held_delta)
        ).group_by(ledger.c.account_id)
        return {r[0]: (int(r[1]), int(r[2])) for r in self.conn.execute(query)}

    def account_balances(self) -> dict[str, tuple[int, int]]:
        query = select(accounts.c.id, accounts.c.available, accounts.c.held)
        return {r.id: (r.available, r.held) for r in self.conn.execute(query)}

    def find_account(self, name: str) -> str | None:
        query = select(accounts.c.id).where(accounts.c.name == name).order_by(accounts.c.created_at).limit(1)
        row = (self.conn.execute(query)).first()
        return row.id if row is not None else None

    def account_exists(self, account_id: str) -> bool:
        query = select(accounts.c.id).where(accounts.c.id == account_id)
        return (self.conn.execute(query)).first() is not None


class Writer(Reader):
    """Statements that change state; only inside ``store.write()``."""

    def insert_account(self, account_id: str, name: str, now: float) -> None:
        self.conn.execute(insert(accounts).values(id=account_id, name=name, created_at=now))

    def insert_api_key(
        self, key_id: str, account_id: str, key_hash: str, prefix: str, scope: Scope, now: float
    ) -> None:
        self.conn.execute(
            insert(api_keys).values(
                id=key_id, account_id=account_id, key_hash=key_hash, prefix=prefix, scope=scope.value,
                created_at=now,
            )
        )

    def upsert_offer(self, task_type: str, price: int, enabled: bool, now: float) -> None:
        changed = self.conn.execute(
            update(offers)
            .where(offers.c.type == task_type)
            .values(price=price, enabled=enabled, updated_at=now)
        )
        if changed.rowcount == 0:
            self.conn.execute(
                insert(offers).values(type=task_type, price=price, enabled=enabled, updated_at=now)
            )

    def _ledger(
        self, account_id: str, task_id: str | None, kind: str, available: int, held: int, now: float
    ) -> None:
        self.conn.execute(_INSERT_LEDGER, {
            "account_id": account_id, "task_id": task_id, "kind": kind, "available_delta": available,
            "held_delta": held, "created_at": now,
        })

    def top_up(self, account_id: str, amount: int, now: float) -> bool:
        changed = self.conn.execute(_TOP_UP, {"p_account": account_id, "p_amount": amount})
        if changed.rowcount == 0:
            return False
        self._ledger(account_id, None, "topup", amount, 0, now)
        return True

    def hold(self, account_id: str, task_id: str, amount: int, now: float) -> bool:
        """Move ``amount`` from available to held, atomically refusing to overspend.

        The balance check and the debit are one conditional UPDATE, so two concurrent creates can
        never both pass the check on the same money, on SQLite or PostgreSQL alike.
        """
        changed = self.conn.execute(_HOLD, {"p_account": account_id, "p_amount": amount})
        if changed.rowcount == 0:
            return False
        self._ledger(account_id, task_id, "hold", -amount, amount, now)
        return True

    def settle(self, task: Task, *, capture: bool, now: float) -> None:
        """Capture (keep) or release (refund) a task's hold. The ledger's unique (task, kind) refuses a
        second settlement, which rolls the whole unit of work back."""
        amount = task.price
        self.conn.execute(_CAPTURE if capture else _RELEASE, {"p_account": task.account_id, "p_amount": amount})
        kind = "capture" if capture else "release"
        self._ledger(task.account_id, task.id, kind, 0 if capture else amount, -amount, now)

    def insert_task(
        self,
        *,
        task_id: str,
        account_id: str,
        task_type: str,
        params: dict[str, Any],
        price: int,
        now: float,
        deadline_at: float,
        callback_url: str | None = None,
        pool_only: bool = False,
    ) -> Task:
        row = self.conn.execute(_INSERT_TASK, {
            "id": task_id, "account_id": account_id, "type": task_type, "status": TaskStatus.PENDING.value,
            "params": _dumps(params), "price": price, "created_at": now, "deadline_at": deadline_at,
            "attempts": 0, "callback_url": callback_url, "pool_only": pool_only,
        }).one()
        return _task_from_row(row)

    def claim_tasks(
        self, types: Sequence[str], owner: str, limit: int, lease_s: float, now: float,
        *, builtin_only: bool = False,
    ) -> list[ClaimedTask]:
        """Lease up to ``limit`` pending tasks of ``types``, oldest first, in one statement.

        ``builtin_only``: skip tasks that only an attached pool can solve (``pool_only``).
        """
        if not types or limit <= 0:
            return []
        statement = _claim_statement(self.conn.dialect.name, builtin_only)
        rows = self.conn.execute(statement, {
            "p_types": list(types), "p_limit": limit, "p_owner": owner, "p_expires": now + lease_s, "p_now": now,
        })
        claimed = sorted((_task_from_row(r) for r in rows), key=lambda t: t.created_at)  # RETURNING has no order
        return [ClaimedTask(task=t, lease_owner=owner, attempt=t.attempts) for t in claimed]

    def _lock_pending(self, query: Any) -> Any:
        # SQLite's BEGIN IMMEDIATE already excludes other writers; PostgreSQL skips rows that a
        # concurrent claimer holds instead of waiting on them.
        if self.conn.dialect.name == "postgresql":
            return query.with_for_update(skip_locked=True)
        return query

    def finish_task(
        self,
        task_id: str,
        *,
        status: TaskStatus,
        now: float,
        solution: dict[str, Any] | None = None,
        error_code: str | None = None,
        error_message: str | None = None,
        cost_if_captured: bool = False,
        fence: tuple[str, int] | None = None,
    ) -> Task | None:
        """Move a live task to a terminal status; None when it was not live (or the fence failed).

        With a ``fence`` (lease owner, attempt) only the worker that holds the current lease can
        finish the task: a worker whose lease expired and was re-granted updates zero rows.
        """
        owner, attempt = fence if fence is not None else (None, None)
        row = self.conn.execute(_FINISH[(fence is not None, cost_if_captured)], {
            "p_id": task_id, "p_owner": owner, "p_attempt": attempt, "p_status": status.value,
            "p_solution": _dumps(solution) if solution is not None else None, "p_error_code": error_code,
            "p_error_message": error_message, "p_now": now,
        }).first()
        return _task_from_row(row) if row is not None else None

    def overdue_task_ids(self, now: float, limit: int) -> list[str]:
        query = (
            select(tasks.c.id)
            .where(tasks.c.status.in_(_LIVE), tasks.c.deadline_at < now)
            .order_by(tasks.c.deadline_at)
            .limit(limit)
        )
        # Locked (PostgreSQL): reapers of several processes split the work instead of queueing on
        # the same rows, and a row a worker is completing is skipped, never waited on while this
        # transaction holds account rows (which would deadlock).
        return [r.id for r in self.conn.execute(self._lock_pending(query))]


# --- prebuilt statements of the write path ---------------------------------------------------------
# Built once with bind parameters: a statement assembled per call with literal values costs
# SQLAlchemy 3-8x more (coercion and cache-key work per value) than the database spends on it.
# (Bind names avoid the column names, which SQLAlchemy reserves in SET and VALUES clauses.)

_INSERT_LEDGER = insert(ledger)
_INSERT_TASK = insert(tasks).returning(tasks)
_ACCOUNT = accounts.c.id == bindparam("p_account")
_AMOUNT: Any = bindparam("p_amount")
_TOP_UP = update(accounts).where(_ACCOUNT).values(available=accounts.c.available + _AMOUNT)
_HOLD = (
    update(accounts)
    .where(_ACCOUNT, accounts.c.available >= _AMOUNT)
    .values(available=accounts.c.available - _AMOUNT, held=accounts.c.held + _AMOUNT)
)
_CAPTURE = update(accounts).where(_ACCOUNT).values(held=accounts.c.held - _AMOUNT)
_RELEASE = (
    update(accounts).where(_ACCOUNT).values(held=accounts.c.held - _AMOUNT, available=accounts.c.available + _AMOUNT)
)


def _finish_statement(fenced: bool, captured: bool) -> Any:
    conditions = [tasks.c.id == bindparam("p_id"), tasks.c.status.in_(_LIVE)]
    if fenced:
        conditions += [
            tasks.c.status == TaskStatus.RUNNING.value,
            tasks.c.lease_owner == bindparam("p_owner"),
            tasks.c.attempts == bindparam("p_attempt"),
        ]
    return (
        update(tasks)
        .where(and_(*conditions))
        .values(
            status=bindparam("p_status"),
            solution=bindparam("p_solution"),
            error_code=bindparam("p_error_code"),
            error_message=bindparam("p_error_message"),
            # cost is what the account paid: the held price when captured, else zero.
            cost=tasks.c.price if captured else 0,
            completed_at=bindparam("p_now"),
            lease_owner=None,
            lease_expires_at=None,
        )
        .returning(tasks)
    )


_FINISH = {
    (fenced, captured): _finish_statement(fenced, captured) for fenced in (False, True) for captured in (False, True)
}
_CLAIMS: dict[tuple[str, bool], Any] = {}


def _claim_statement(dialect: str, builtin_only: bool) -> Any:
    statement = _CLAIMS.get((dialect, builtin_only))
    if statement is None:
        pending = (
            select(tasks.c.id)
            .where(tasks.c.status == TaskStatus.PENDING.value, tasks.c.type.in_(bindparam("p_types", expanding=True)))
            .order_by(tasks.c.created_at)
            .limit(bindparam("p_limit"))
        )
        if builtin_only:
            pending = pending.where(tasks.c.pool_only.is_(False))
        statement = (
            update(tasks)
            .where(picked_ids(dialect, pending), tasks.c.status == TaskStatus.PENDING.value)
            .values(
                status=TaskStatus.RUNNING.value,
                lease_owner=bindparam("p_owner"),
                lease_expires_at=bindparam("p_expires"),
                started_at=func.coalesce(tasks.c.started_at, bindparam("p_now")),
                attempts=tasks.c.attempts + 1,
            )
            .returning(tasks)
        )
        _CLAIMS[(dialect, builtin_only)] = statement
    return statement


def picked_ids(conn: Connection | str, query: Any) -> Any:
    """``tasks.id IN (query)`` for an UPDATE, where ``query`` selects the ids of at most N rows.

    PostgreSQL: the pick runs once, in a MATERIALIZED CTE, locking with SKIP LOCKED: concurrent
    claimers (reapers) take disjoint rows instead of queueing on one another. As a plain subquery
    the planner may run it again per candidate row, and ``LIMIT n`` then takes more than n rows.
    SQLite: BEGIN IMMEDIATE already excludes every other writer.
    """
    dialect = conn if isinstance(conn, str) else conn.dialect.name
    if dialect == "postgresql":
        picked = query.with_for_update(skip_locked=True).cte("picked").prefix_with("MATERIALIZED")
        return tasks.c.id.in_(select(picked.c.id))
    return tasks.c.id.in_(query.scalar_subquery())


class Store(ABC):
    """Runs units of work: a function over a ``Reader`` or ``Writer``, as one transaction.

    The function is synchronous SQLAlchemy code and must do nothing but database work: on SQLite
    it runs on the store's writer thread (writes) or inline (reads), on PostgreSQL inside
    ``run_sync`` over asyncpg.
    """

    dialect: str
    #: One-statement versions of the per-task operations, where the store has them (see hot_path).
    hot: HotPath | None = None

    @abstractmethod
    async def read(self, work: Callable[[Reader], T]) -> T: ...

    @abstractmethod
    async def write(self, work: Callable[[Writer], T]) -> T:
        """One transaction: committed when ``work`` returns, rolled back if it raises."""

    @abstractmethod
    async def close(self) -> None: ...


class SqliteStore(Store):
    dialect = "sqlite"

    def __init__(self, url: str, *, busy_timeout_ms: int) -> None:
        # The writer thread keeps one connection and begins and ends its transactions on the driver
        # (BEGIN IMMEDIATE takes the write lock up front); SQLAlchemy's own transaction and pool
        # bookkeeping cost more than a SQLite write.
        self._writer = create_sqlite_engine(url, writer=None, busy_timeout_ms=busy_timeout_ms)
        self._write_conn: Connection | None = None
        # Reads run on the event loop's thread over one connection held open: a WAL read of an
        # indexed row from the page cache takes ~20 us and never waits for a writer, while a
        # hand-off to a thread and back costs 60-100 us, and a pool checkout with SQLAlchemy's
        # transaction events costs another ~150 us. Readers give up quickly if the file is ever
        # locked (WAL recovery).
        self._reader = create_sqlite_engine(url, writer=None, busy_timeout_ms=min(busy_timeout_ms, 200))
        self._read_conn: Connection | None = None
        self._read_driver: Any = None
        # One writer thread owns the one write connection: SQLite serialises writers anyway, and
        # queueing them here costs nothing while spinning on the file lock would.
        self._write_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cracker-sqlite-writer")

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
            raise_if_unavailable(exc)
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
            except BaseException:
                raw.execute("ROLLBACK")
                raise
            raw.execute("COMMIT")
            return result
        except (DBAPIError, OSError, PoolTimeout, sqlite3.Error) as exc:
            self._drop_write_conn()  # a fresh connection next time, whatever state this one is in
            raise_if_unavailable(exc)
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


def open_store(url: str, *, sqlite_busy_timeout_ms: int = 5_000) -> Store:
    if is_sqlite(url):
        return SqliteStore(url, busy_timeout_ms=sqlite_busy_timeout_ms)
    from cracker.store.postgres import PostgresStore

    return PostgresStore(url)


_SQLITE_TRANSIENT = ("database is locked", "database is busy", "unable to open", "disk i/o error")


def raise_if_unavailable(exc: BaseException) -> None:
    """Turn the database being busy or unreachable into ``service_unavailable`` (retryable).

    Anything else (a missing table, a constraint) is a bug or a broken install: it stays an
    internal error.
    """
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


__all__ = ["IntegrityError", "Reader", "Store", "Writer", "open_store", "raise_if_unavailable"]
