"""Consistency checks over the whole database, for the crash test and operators' audits.

Read-only and unindexed on purpose (full scans): run them on a quiet system, not per request.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import case, func, select

from cracker.domain.tasks import TaskStatus
from cracker.store.schema import ledger, tasks, workers
from cracker.store.units import Reader

_TERMINAL = (TaskStatus.COMPLETED.value, TaskStatus.REJECTED.value)


@dataclass(frozen=True, slots=True)
class LedgerAudit:
    tasks_by_status: dict[str, int]
    #: Tasks whose money moved wrongly: no hold or several, a capture or release twice, both a
    #: capture and a release, a completed task not captured, a terminal task never settled.
    bad_holds: int
    captured_twice: int
    released_twice: int
    captured_and_released: int
    completed_not_captured: int
    terminal_not_settled: int
    live_but_settled: int
    #: Tasks that were leased more than once (their worker died or lost the lease).
    leased_again: int
    #: Refunds (a report of a wrong answer) given twice for a task, for a task never captured, or
    #: of more than its capture; read from the ledger alone, so they hold after retention
    #: deleted the tasks.
    refunded_twice: int = 0
    refunded_not_captured: int = 0
    refund_over_capture: int = 0


def audit_ledger(r: Reader) -> LedgerAudit:
    per_task = (
        select(
            ledger.c.task_id,
            func.sum(case((ledger.c.kind == "hold", 1), else_=0)).label("holds"),
            func.sum(case((ledger.c.kind == "capture", 1), else_=0)).label("captures"),
            func.sum(case((ledger.c.kind == "release", 1), else_=0)).label("releases"),
        )
        .where(ledger.c.task_id.is_not(None))
        .group_by(ledger.c.task_id)
        .subquery()
    )
    rows = r.conn.execute(
        select(tasks.c.status, tasks.c.attempts, per_task.c.holds, per_task.c.captures, per_task.c.releases)
        .select_from(tasks.outerjoin(per_task, per_task.c.task_id == tasks.c.id))
    ).all()
    by_status: dict[str, int] = {}
    counts = dict.fromkeys(
        ("bad_holds", "captured_twice", "released_twice", "both", "not_captured", "not_settled", "live_settled",
         "again"), 0,
    )
    for status, attempts, holds, captures, releases in rows:
        holds, captures, releases = holds or 0, captures or 0, releases or 0
        by_status[status] = by_status.get(status, 0) + 1
        counts["bad_holds"] += holds != 1
        counts["captured_twice"] += captures > 1
        counts["released_twice"] += releases > 1
        counts["both"] += captures > 0 and releases > 0
        counts["not_captured"] += status == TaskStatus.COMPLETED.value and captures != 1
        counts["not_settled"] += status in _TERMINAL and captures + releases != 1
        counts["live_settled"] += status not in _TERMINAL and captures + releases > 0
        counts["again"] += attempts > 1
    return LedgerAudit(
        tasks_by_status=by_status, bad_holds=counts["bad_holds"], captured_twice=counts["captured_twice"],
        released_twice=counts["released_twice"], captured_and_released=counts["both"],
        completed_not_captured=counts["not_captured"], terminal_not_settled=counts["not_settled"],
        live_but_settled=counts["live_settled"], leased_again=counts["again"], **_audit_refunds(r),
    )


def _audit_refunds(r: Reader) -> dict[str, int]:
    refunds = (
        select(ledger.c.task_id, func.count().label("refunds"), func.sum(ledger.c.available_delta).label("refunded"))
        .where(ledger.c.kind == "refund")
        .group_by(ledger.c.task_id)
        .subquery()
    )
    captures = (
        select(ledger.c.task_id, func.count().label("captures"), func.sum(-ledger.c.held_delta).label("captured"))
        .where(ledger.c.kind == "capture")
        .group_by(ledger.c.task_id)
        .subquery()
    )
    rows = r.conn.execute(
        select(refunds.c.refunds, refunds.c.refunded, captures.c.captures, captures.c.captured)
        .select_from(refunds.outerjoin(captures, captures.c.task_id == refunds.c.task_id))
    ).all()
    counts = {"refunded_twice": 0, "refunded_not_captured": 0, "refund_over_capture": 0}
    for refund_count, refunded, capture_count, captured in rows:
        counts["refunded_twice"] += refund_count > 1
        counts["refunded_not_captured"] += not capture_count
        counts["refund_over_capture"] += int(refunded or 0) > int(captured or 0)
    return counts


def not_terminal(r: Reader, task_ids: Iterable[str]) -> tuple[list[str], list[str]]:
    """Of these ids: (missing, not terminal)."""
    ids = list(task_ids)
    found: dict[str, str] = {}
    for start in range(0, len(ids), 1000):
        chunk = ids[start : start + 1000]
        rows = r.conn.execute(select(tasks.c.id, tasks.c.status).where(tasks.c.id.in_(chunk)))
        found.update((row[0], row[1]) for row in rows)
    missing = [i for i in ids if i not in found]
    live = [i for i in ids if i in found and found[i] not in _TERMINAL]
    return missing, live


def live_count(r: Reader) -> int:
    return int(r.conn.execute(select(func.count()).where(tasks.c.status.not_in(_TERMINAL))).scalar_one())


def lease_holders(r: Reader) -> list[str]:
    """Names (as registered) of the workers holding a lease on a running task, busiest first: for
    the crash test, which kills a worker that has work in hand."""
    rows = r.conn.execute(
        select(workers.c.name, func.count().label("held"))
        .select_from(tasks.join(workers, workers.c.id == tasks.c.lease_owner))
        .where(tasks.c.status == TaskStatus.RUNNING.value)
        .group_by(workers.c.name)
        .order_by(func.count().desc())
    )
    return [row.name for row in rows]
