"""SQL of task reports: one per task, the refund share's counts, and the labelled images they keep."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, func, insert, or_, select

from cracker.domain.reports import ReportedLabel
from cracker.domain.tasks import TaskStatus
from cracker.store.schema import accounts, task_reports, tasks
from cracker.store.units import Reader, Writer


@dataclass(frozen=True, slots=True)
class ReportRow:
    task_id: str
    account_id: str
    task_type: str
    model: str
    image: bytes | None
    answer: str
    expected: str | None
    correct: bool
    refund: int
    refund_refused: str | None
    created_at: float


def lock_account(tx: Writer, account_id: str) -> None:
    """Serialise an account's reports: the refund share is read, then a refund written, and two
    reports of one account at once must not both pass the same count. PostgreSQL locks the row
    until commit; on SQLite ``BEGIN IMMEDIATE`` already excludes every other writer."""
    tx.conn.execute(select(accounts.c.id).where(accounts.c.id == account_id).with_for_update())


def is_reported(r: Reader, task_id: str) -> bool:
    return r.conn.execute(select(task_reports.c.task_id).where(task_reports.c.task_id == task_id)).first() is not None


def completed_since(r: Reader, account_id: str, task_type: str, since: float) -> int:
    """The account's completed tasks of ``task_type`` created at or after ``since`` (read by
    ix_tasks_account: the account's recent tasks only)."""
    query = select(func.count()).where(
        tasks.c.account_id == account_id, tasks.c.created_at >= since, tasks.c.type == task_type,
        tasks.c.status == TaskStatus.COMPLETED.value,
    )
    return int(r.conn.execute(query).scalar_one())


def refunded_since(r: Reader, account_id: str, task_type: str, since: float) -> int:
    """The account's refunded reports of ``task_type`` made at or after ``since``."""
    query = select(func.count()).where(
        task_reports.c.account_id == account_id, task_reports.c.task_type == task_type,
        task_reports.c.created_at >= since, task_reports.c.refund > 0,
    )
    return int(r.conn.execute(query).scalar_one())


def insert_report(tx: Writer, row: ReportRow) -> None:
    """A second report of the task fails on the primary key (``ConstraintViolation``)."""
    tx.conn.execute(insert(task_reports).values(
        task_id=row.task_id, account_id=row.account_id, task_type=row.task_type, model=row.model, image=row.image,
        answer=row.answer, expected=row.expected, correct=row.correct, refund=row.refund,
        refund_refused=row.refund_refused, created_at=row.created_at,
    ))


def reported_labels(r: Reader, model: str, limit: int, account_id: str | None = None) -> list[ReportedLabel]:
    """Labelled images of ``model``, newest first: each incorrect report's image with the text the
    client expected, and each correct report's image with the answer given."""
    text = func.coalesce(task_reports.c.expected, task_reports.c.answer)
    query = (
        select(task_reports.c.image, text.label("text"))
        .where(
            task_reports.c.model == model, task_reports.c.image.is_not(None),
            # An incorrect report without the right text labels nothing.
            or_(task_reports.c.correct.is_(True), task_reports.c.expected.is_not(None)),
        )
        .order_by(task_reports.c.created_at.desc())
        .limit(limit)
    )
    if account_id is not None:
        query = query.where(task_reports.c.account_id == account_id)
    return [ReportedLabel(image=bytes(row.image), text=str(row.text)) for row in r.conn.execute(query)]


def purge_reports(tx: Writer, before: float) -> int:
    """Delete the reports made before ``before`` (their refunds stay in the ledger)."""
    result = tx.conn.execute(delete(task_reports).where(task_reports.c.created_at < before))
    return int(result.rowcount or 0)
