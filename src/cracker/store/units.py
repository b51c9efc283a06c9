"""Units of work over SQLAlchemy Core: ``Reader`` and ``Writer``, the same on SQLite and PostgreSQL.

The store runs a unit of work (a synchronous function over one of these) as one transaction; the
service composes the cold operations (accounts, offers, the worker registry, webhooks, retention)
this way. The per-task operations are the store's own methods instead (see ``interface``).
"""

from __future__ import annotations

import sqlite3
from typing import Any

from sqlalchemy import Column, Connection, bindparam, func, insert, select, update
from sqlalchemy.dialects import sqlite as sqlite_dialect

from cracker.domain.accounts import ApiKeyRecord, Balance, Scope
from cracker.domain.tasks import Task, TaskStatus, TaskView
from cracker.store import sqlite_sql
from cracker.store.rows import VIEW_COLUMNS, task_from_row, view_from_row
from cracker.store.schema import accounts, api_keys, ledger, offers, tasks

LIVE = (TaskStatus.PENDING.value, TaskStatus.RUNNING.value)

# The hot statements are built once: executing a prebuilt statement skips SQLAlchemy's construction
# and hits its compiled-statement cache.
_GET_TASK = select(tasks).where(tasks.c.id == bindparam("task_id"))
_GET_TASK_VIEW = select(*(tasks.c[name] for name in VIEW_COLUMNS)).where(tasks.c.id == bindparam("task_id"))
GET_TASK_VIEW_SQLITE = str(_GET_TASK_VIEW.compile(dialect=sqlite_dialect.dialect()))
_GET_KEY = select(api_keys.c.id, api_keys.c.account_id, api_keys.c.key_hash, api_keys.c.scope).where(
    api_keys.c.key_hash == bindparam("key_hash"), api_keys.c.revoked_at.is_(None)
)
_GET_BALANCE = select(accounts.c.available, accounts.c.held).where(accounts.c.id == bindparam("account_id"))
_GET_PRICE = select(offers.c.price).where(offers.c.type == bindparam("task_type"), offers.c.enabled.is_(True))

# Built once with bind parameters: a statement assembled per call with literal values costs
# SQLAlchemy 3-8x more (coercion and cache-key work per value) than the database spends on it.
# (Bind names avoid the column names, which SQLAlchemy reserves in SET and VALUES clauses.)
_INSERT_LEDGER = insert(ledger)
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


class Reader:
    """Queries that read; usable inside a write unit too."""

    def __init__(self, conn: Connection, sqlite_driver: sqlite3.Connection | None = None) -> None:
        self.conn = conn
        # On SQLite the hot statements go straight to the driver (the pollers' point read, and the
        # task path's writes: sqlite_sql): SQLAlchemy's execution context costs 3x the statement.
        if sqlite_driver is None and conn.dialect.name == "sqlite":
            sqlite_driver = conn.connection.driver_connection
        self._sqlite = sqlite_driver

    @property
    def sqlite_driver(self) -> sqlite3.Connection | None:
        """The ``sqlite3`` connection under ``conn`` on SQLite (same transaction); None elsewhere."""
        return self._sqlite

    def get_task(self, task_id: str) -> Task | None:
        row = self.conn.execute(_GET_TASK, {"task_id": task_id}).first()
        return task_from_row(row) if row is not None else None

    def get_task_view(self, task_id: str) -> TaskView | None:
        """The client's view of a task (what every poll reads): no request params."""
        if self._sqlite is not None:
            row: Any = self._sqlite.execute(GET_TASK_VIEW_SQLITE, (task_id,)).fetchone()
        else:
            row = self.conn.execute(_GET_TASK_VIEW, {"task_id": task_id}).first()
        return view_from_row(row) if row is not None else None

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
            .where(tasks.c.status.in_(LIVE))
            .group_by(tasks.c.type, tasks.c.status)
        )
        return {(r[0], r[1]): r[2] for r in self.conn.execute(query)}

    def ledger_totals(self) -> dict[str, tuple[int, int]]:
        """account_id -> (sum of available deltas, sum of held deltas): what the balances must equal."""
        query = select(
            ledger.c.account_id, func.sum(ledger.c.available_delta), func.sum(ledger.c.held_delta)
        ).group_by(ledger.c.account_id)
        return {r[0]: (int(r[1]), int(r[2])) for r in self.conn.execute(query)}

    def ledger_entries(self, account_id: str) -> list[tuple[str | None, str, int, int]]:
        """The account's ledger, oldest first: (task id, kind, available delta, held delta) rows."""
        query = (
            select(ledger.c.task_id, ledger.c.kind, ledger.c.available_delta, ledger.c.held_delta)
            .where(ledger.c.account_id == account_id)
            .order_by(ledger.c.id)
        )
        return [(r[0], r[1], r[2], r[3]) for r in self.conn.execute(query)]

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
        self, account_id: str, task_id: str | None, kind: str, available: int, held: int, now: float,
        note: str | None = None,
    ) -> None:
        if note is None and self._sqlite is not None:  # the task path's rows
            self._sqlite.execute(sqlite_sql.LEDGER, (account_id, task_id, kind, available, held, now))
            return
        row: dict[str, Any] = {
            "account_id": account_id, "task_id": task_id, "kind": kind, "available_delta": available,
            "held_delta": held, "created_at": now,
        }
        if note is not None:  # only then: the task path's statement stays the one it always was
            row["note"] = note
        self.conn.execute(_INSERT_LEDGER, row)

    def top_up(self, account_id: str, amount: int, now: float, note: str | None = None) -> bool:
        """Add ``amount`` to the balance with its ledger row; ``note``: why (an operator's reason)."""
        changed = self.conn.execute(_TOP_UP, {"p_account": account_id, "p_amount": amount})
        if changed.rowcount == 0:
            return False
        self._ledger(account_id, None, "topup", amount, 0, now, note)
        return True

    def hold(self, account_id: str, task_id: str, amount: int, now: float) -> bool:
        """Move ``amount`` from available to held, atomically refusing to overspend.

        The balance check and the debit are one conditional UPDATE, so two concurrent creates can
        never both pass the check on the same money, on SQLite or PostgreSQL alike.
        """
        if self._sqlite is not None:
            held = self._sqlite.execute(sqlite_sql.HOLD, {"account": account_id, "amount": amount}).rowcount
        else:
            held = self.conn.execute(_HOLD, {"p_account": account_id, "p_amount": amount}).rowcount
        if held == 0:
            return False
        self._ledger(account_id, task_id, "hold", -amount, amount, now)
        return True

    def settle(self, task: Task, *, capture: bool, now: float) -> None:
        """Capture (keep) or release (refund) a task's hold. The ledger's unique (task, kind) refuses a
        second settlement, which rolls the whole unit of work back."""
        amount = task.price
        if self._sqlite is not None:
            statement = sqlite_sql.CAPTURE if capture else sqlite_sql.RELEASE
            self._sqlite.execute(statement, {"account": task.account_id, "amount": amount})
        else:
            self.conn.execute(_CAPTURE if capture else _RELEASE, {"p_account": task.account_id, "p_amount": amount})
        kind = "capture" if capture else "release"
        self._ledger(task.account_id, task.id, kind, 0 if capture else amount, -amount, now)

    def refund(self, account_id: str, task_id: str, amount: int, now: float) -> None:
        """Give back a completed task's captured cost (a report of a wrong answer): a ``refund``
        ledger row. The ledger's unique (task, kind) refuses a second refund of the task."""
        self.conn.execute(_TOP_UP, {"p_account": account_id, "p_amount": amount})
        self._ledger(account_id, task_id, "refund", amount, 0, now)


def skip_locked_pick(conn: Connection, column: Column[Any], query: Any) -> Any:
    """``column IN (query)`` for an UPDATE, where ``query`` selects ``column`` of at most N rows.

    PostgreSQL: the pick runs once, in a MATERIALIZED CTE, locking with SKIP LOCKED: concurrent
    claimers (reapers, dispatchers) take disjoint rows instead of queueing on one another. As a
    plain subquery the planner may run it again per candidate row, and ``LIMIT n`` then takes more
    than n rows. SQLite: BEGIN IMMEDIATE already excludes every other writer.
    """
    if conn.dialect.name == "postgresql":
        picked = query.with_for_update(skip_locked=True).cte("picked").prefix_with("MATERIALIZED")
        return column.in_(select(picked.c[column.name]))
    return column.in_(query.scalar_subquery())
