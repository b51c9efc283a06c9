"""SQL of the web dashboard: its sessions, and the paged and bucketed reads of its views.

Every read is bounded: pages have a limit, bucketed figures group in the database over an indexed
time range (``ix_tasks_account`` for one account, ``ix_tasks_created`` for the operator), so a
million finished tasks cost what the window holds, not what the table holds.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Integer, and_, cast, delete, func, insert, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.elements import ColumnElement

from cracker.domain.accounts import Scope
from cracker.domain.dashboard import AccountRow, BucketCount, DashboardSession, LedgerRow, QueuePeak, TaskRow
from cracker.store.schema import accounts, api_keys, dashboard_sessions, ledger, queue_samples, tasks
from cracker.store.units import Reader, Writer

# --- sessions -------------------------------------------------------------------------------


def insert_session(
    tx: Writer, token_hash: str, key_id: str, account_id: str, scope: Scope, csrf_token: str, now: float,
    expires_at: float,
) -> None:
    tx.conn.execute(insert(dashboard_sessions).values(
        token_hash=token_hash, key_id=key_id, account_id=account_id, scope=scope.value, csrf_token=csrf_token,
        created_at=now, expires_at=expires_at,
    ))


def get_session(r: Reader, token_hash: str, now: float) -> DashboardSession | None:
    """The session, while it has not expired and the key it signed in with is not revoked."""
    row = r.conn.execute(
        select(dashboard_sessions)
        .join(api_keys, api_keys.c.id == dashboard_sessions.c.key_id)
        .where(
            dashboard_sessions.c.token_hash == token_hash, dashboard_sessions.c.expires_at > now,
            api_keys.c.revoked_at.is_(None),
        )
    ).first()
    if row is None:
        return None
    return DashboardSession(row.key_id, row.account_id, Scope(row.scope), row.csrf_token, row.expires_at)


def delete_session(tx: Writer, token_hash: str) -> None:
    tx.conn.execute(delete(dashboard_sessions).where(dashboard_sessions.c.token_hash == token_hash))


def delete_expired_sessions(tx: Writer, now: float) -> int:
    return int(tx.conn.execute(delete(dashboard_sessions).where(dashboard_sessions.c.expires_at <= now)).rowcount)


# --- an account's views ---------------------------------------------------------------------


def ledger_page(
    r: Reader, account_id: str, *, kind: str | None, since: float | None, until: float | None,
    before_id: int | None, limit: int,
) -> list[LedgerRow]:
    """The account's ledger rows, newest first, filtered (``ix_ledger_account_id``)."""
    conditions: list[ColumnElement[bool]] = [ledger.c.account_id == account_id]
    if kind:
        conditions.append(ledger.c.kind == kind)
    if since is not None:
        conditions.append(ledger.c.created_at >= since)
    if until is not None:
        conditions.append(ledger.c.created_at < until)
    if before_id is not None:
        conditions.append(ledger.c.id < before_id)
    query = select(ledger).where(and_(*conditions)).order_by(ledger.c.id.desc()).limit(limit)
    return [
        LedgerRow(row.id, row.task_id, row.kind, row.available_delta, row.held_delta, row.created_at, row.note)
        for row in r.conn.execute(query)
    ]


_TASK_COLUMNS = (
    tasks.c.id, tasks.c.type, tasks.c.status, tasks.c.price, tasks.c.cost, tasks.c.created_at, tasks.c.started_at,
    tasks.c.completed_at, tasks.c.error_code,
)


def _older_than(created_at: Any, row_id: Any, before: tuple[float, str]) -> ColumnElement[bool]:
    """Rows after ``before`` (created at, id) in newest-first order: the next page's keyset."""
    at, before_id = before
    return or_(created_at < at, and_(created_at == at, row_id < before_id))


def tasks_page(
    r: Reader, account_id: str, *, task_type: str | None, status: str | None, since: float | None,
    until: float | None, limit: int, before: tuple[float, str] | None = None,
) -> list[TaskRow]:
    """The account's tasks, newest first (ties by id), filtered, from after ``before`` (the last
    row of the previous page) when given (``ix_tasks_account``)."""
    conditions: list[ColumnElement[bool]] = [tasks.c.account_id == account_id]
    if before is not None:
        conditions.append(_older_than(tasks.c.created_at, tasks.c.id, before))
    if task_type:
        conditions.append(tasks.c.type == task_type)
    if status:
        conditions.append(tasks.c.status == status)
    if since is not None:
        conditions.append(tasks.c.created_at >= since)
    if until is not None:
        conditions.append(tasks.c.created_at < until)
    query = (
        select(*_TASK_COLUMNS).where(and_(*conditions)).order_by(tasks.c.created_at.desc(), tasks.c.id.desc())
        .limit(limit)
    )
    return [TaskRow(*row) for row in r.conn.execute(query)]


def task_rows(r: Reader, account_id: str, task_ids: list[str]) -> list[TaskRow]:
    """These tasks of the account (another account's ids are left out): the live page's refresh."""
    if not task_ids:
        return []
    # The account is tested here, not in SQL: beside ``account_id = ?`` SQLite's planner (no
    # statistics) reads through ix_tasks_account, every task the account ever sent, instead of
    # finding the few ids by the primary key.
    query = select(*_TASK_COLUMNS, tasks.c.account_id).where(tasks.c.id.in_(task_ids))
    return [TaskRow(*row[:-1]) for row in r.conn.execute(query) if row[-1] == account_id]


def _bucket(r: Reader, bucket_s: int, column: ColumnElement[Any] = tasks.c.created_at) -> ColumnElement[Any]:
    # Whole buckets since the epoch: CAST truncates on SQLite but rounds on PostgreSQL.
    scaled = column / bucket_s
    floored = func.floor(scaled) if r.conn.dialect.name == "postgresql" else scaled
    return cast(floored, Integer) * bucket_s


def bucket_counts(r: Reader, since: float, bucket_s: int, *, account_id: str | None = None) -> list[BucketCount]:
    """Tasks created since ``since`` per (bucket, type, status, error code), with their summed cost:
    one account's over ``ix_tasks_account``, everyone's over ``ix_tasks_created``. The error code
    in the key gives the operator's error counts from the same pass (a handful of codes)."""
    bucket = _bucket(r, bucket_s).label("bucket")
    conditions: list[ColumnElement[bool]] = [tasks.c.created_at >= since]
    if account_id is not None:
        conditions.append(tasks.c.account_id == account_id)
    query = (
        select(bucket, tasks.c.type, tasks.c.status, tasks.c.error_code, func.count(),
               func.coalesce(func.sum(tasks.c.cost), 0))
        .where(and_(*conditions))
        .group_by(bucket, tasks.c.type, tasks.c.status, tasks.c.error_code)
    )
    return [
        BucketCount(float(row[0]), row[1], row[2], int(row[4]), int(row[5]), row[3]) for row in r.conn.execute(query)
    ]


# --- the operator's views -------------------------------------------------------------------


def recent_latencies(r: Reader, since: float, limit: int) -> list[tuple[str, float, float]]:
    """(type, created at, seconds from creation to completion) of the latest ``limit`` tasks
    completed that were created since ``since``: the sample the latency percentiles come from."""
    # status || '': no index on status may drive this read (SQLite would pick one and walk every
    # completed task of the retention window); the newest rows of ix_tasks_created do, up to the limit.
    query = (
        select(tasks.c.type, tasks.c.created_at, tasks.c.completed_at - tasks.c.created_at)
        .where(tasks.c.created_at >= since, tasks.c.status.concat("") == "completed")
        .order_by(tasks.c.created_at.desc())
        .limit(limit)
    )
    return [(row[0], float(row[1]), float(row[2])) for row in r.conn.execute(query)]


def account_rows(
    r: Reader, *, search: str | None, limit: int, before: tuple[float, str] | None = None
) -> list[AccountRow]:
    """Accounts, newest first (ties by id), from after ``before`` (the last row of the previous
    page) when given; ``search`` matches a name's start or an id exactly."""
    query = select(accounts.c.id, accounts.c.name, accounts.c.available, accounts.c.held, accounts.c.created_at)
    if search:
        query = query.where((accounts.c.id == search) | accounts.c.name.startswith(search, autoescape=True))
    if before is not None:
        query = query.where(_older_than(accounts.c.created_at, accounts.c.id, before))
    query = query.order_by(accounts.c.created_at.desc(), accounts.c.id.desc()).limit(limit)
    return [AccountRow(*row) for row in r.conn.execute(query)]


def insert_queue_samples(tx: Writer, sampled_at: float, depths: dict[tuple[str, str], int]) -> int:
    """One row per type of ``depths`` ((type, status) -> live tasks) for the slot ``sampled_at``;
    a (slot, type) another process sampled first is left as it is. Returns the rows written."""
    per_type: dict[str, dict[str, int]] = {}
    for (task_type, status), n in depths.items():
        per_type.setdefault(task_type, {"pending": 0, "running": 0})[status] = n
    if not per_type:
        return 0
    rows = [{"sampled_at": sampled_at, "type": t, "pending": c.get("pending", 0), "running": c.get("running", 0)}
            for t, c in sorted(per_type.items())]
    # ON CONFLICT DO NOTHING: several API processes sample the same slot; one row per (slot, type).
    dialect = postgresql if tx.conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(queue_samples).values(rows).on_conflict_do_nothing(
        index_elements=[queue_samples.c.sampled_at, queue_samples.c.type]
    )
    return int(tx.conn.execute(statement).rowcount)


def queue_peaks(r: Reader, since: float, bucket_s: int) -> list[QueuePeak]:
    """Per (bucket, type), the most tasks queued and running over the samples since ``since``
    (the primary key's range)."""
    bucket = _bucket(r, bucket_s, queue_samples.c.sampled_at).label("bucket")
    query = (
        select(bucket, queue_samples.c.type, func.max(queue_samples.c.pending), func.max(queue_samples.c.running))
        .where(queue_samples.c.sampled_at >= since)
        .group_by(bucket, queue_samples.c.type)
    )
    return [QueuePeak(float(row[0]), row[1], int(row[2]), int(row[3])) for row in r.conn.execute(query)]


def purge_queue_samples(tx: Writer, before: float) -> int:
    return int(tx.conn.execute(delete(queue_samples).where(queue_samples.c.sampled_at < before)).rowcount)
