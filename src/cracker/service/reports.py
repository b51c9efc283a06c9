"""Use case of reports: a client says a completed task's answer was right or wrong.

One transaction per report: the account is locked (its reports queue on one another, so the
refund share is counted once per refund), the task checked, the report row written (its primary
key refuses a second report of the task, whatever raced) and an incorrect one refunded within the
share, with its ledger row. The v2 route answers from the outcome; the vendors' report methods
(2captcha's reportbad / reportgood, Anti-Captcha's reportIncorrect*) map onto the same call.
"""

from __future__ import annotations

import base64
import binascii

from cracker.domain.clock import Clock, now
from cracker.domain.errors import (
    AlreadyReported,
    FieldError,
    NotFound,
    ReportWindowClosed,
    TaskNotCompleted,
    ValidationFailed,
)
from cracker.domain.reports import GENERAL_MODEL, IMAGE_TYPES, RefundPolicy, RefundRefused, ReportOutcome
from cracker.domain.tasks import Task, TaskStatus
from cracker.metrics import Metrics
from cracker.store import ConstraintViolation, Store, Writer, reports


def _image_of(task: Task) -> bytes | None:
    """The task's image (copied into the report: retention deletes the task's params later)."""
    if task.type not in IMAGE_TYPES:
        return None
    raw = task.params.get("image_b64")
    if not isinstance(raw, str):
        return None
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):  # validated at creation; never expected here
        return None


def _model_of(task: Task) -> str:
    model = task.params.get("model")
    return model if isinstance(model, str) and model else GENERAL_MODEL


class ReportService:
    def __init__(self, store: Store, metrics: Metrics, policy: RefundPolicy, *, clock: Clock = now) -> None:
        """``clock``: the runtime's (the one the task service stamps completions with), so that a
        task's age at its report is read on one clock."""
        self._store = store
        self._metrics = metrics
        self.policy = policy
        self._clock = clock

    async def report(
        self, account_id: str, task_id: str, *, correct: bool, expected: str | None = None
    ) -> ReportOutcome:
        """Record the account's report of its task; refund an incorrect one within the share.

        Raises ``NotFound`` (unknown, or another account's task: the same answer),
        ``TaskNotCompleted``, ``AlreadyReported`` and ``ReportWindowClosed``; nothing is written then.
        """
        if correct and expected is not None:
            raise ValidationFailed([FieldError(
                "expected", "not_allowed", "expected goes with correct=false: a correct answer is its own label"
            )])
        at = self._clock()
        try:
            outcome = await self._store.write(lambda tx: self._record(tx, account_id, task_id, correct, expected, at))
        except ConstraintViolation as exc:
            # The primary key of task_reports: another report of this task committed first.
            self._metrics.reports.labels("unknown", "already_reported").inc()
            raise AlreadyReported(f"Task {task_id} was reported already") from exc
        except _Refused as refused:
            self._metrics.reports.labels(refused.task_type, refused.error.code).inc()
            raise refused.error from None
        self._metrics.reports.labels(outcome.task_type, outcome.outcome).inc()
        return outcome

    def _record(
        self, tx: Writer, account_id: str, task_id: str, correct: bool, expected: str | None, at: float
    ) -> ReportOutcome:
        reports.lock_account(tx, account_id)
        task = tx.get_task(task_id)
        # Another account's task is exactly as unknown as a missing one.
        if task is None or task.account_id != account_id:
            raise NotFound(f"No task {task_id}")
        if expected is not None and task.type not in IMAGE_TYPES:
            raise ValidationFailed([FieldError(
                "expected", "not_allowed", f"expected applies to image-to-text tasks only, not {task.type}"
            )])
        if task.status is not TaskStatus.COMPLETED or task.completed_at is None:
            raise _Refused(task, TaskNotCompleted(
                f"Task {task_id} is {task.status.value}; only a completed task can be reported"))
        if reports.is_reported(tx, task_id):
            raise _Refused(task, AlreadyReported(f"Task {task_id} was reported already"))
        if at - task.completed_at > self.policy.window_s:
            raise _Refused(task, ReportWindowClosed(
                f"Task {task_id} completed {at - task.completed_at:.0f} s ago; reports are accepted for "
                f"{self.policy.window_s:.0f} s after completion"))
        refund, refused = 0, None
        if not correct:
            cost = task.cost or 0
            if cost <= 0:
                refused = RefundRefused.NO_COST
            else:
                since = at - self.policy.period_s
                completed = reports.completed_since(tx, account_id, task.type, since)
                refunded = reports.refunded_since(tx, account_id, task.type, since)
                if self.policy.refund_allowed(completed, refunded):
                    refund = cost
                else:
                    refused = RefundRefused.SHARE_EXCEEDED
        image = _image_of(task)
        answer = str((task.solution or {}).get("token", ""))
        reports.insert_report(tx, reports.ReportRow(
            task_id=task.id, account_id=account_id, task_type=task.type, model=_model_of(task), image=image,
            answer=answer, expected=expected, correct=correct, refund=refund,
            refund_refused=refused.value if refused is not None else None, created_at=at,
        ))
        if refund:
            tx.refund(account_id, task.id, refund, at)
        balance = tx.get_balance(account_id)
        assert balance is not None  # locked above
        return ReportOutcome(
            task_id=task.id, task_type=task.type, correct=correct, refund=refund, refund_refused=refused,
            labelled=image is not None and (correct or expected is not None), balance=balance.available,
            created_at=at,
        )

    async def purge(self, retention_s: float) -> int:
        """Delete reports older than ``retention_s`` (0 keeps them); never those the refund share
        still counts."""
        if retention_s <= 0:
            return 0
        before = self._clock() - max(retention_s, self.policy.period_s)
        return await self._store.write(lambda tx: reports.purge_reports(tx, before))


class _Refused(Exception):
    """A refused report (raised inside the unit of work, which rolls back), with its task's type
    for the metrics' label."""

    def __init__(self, task: Task, error: TaskNotCompleted | AlreadyReported | ReportWindowClosed) -> None:
        super().__init__(error.message)
        self.task_type = task.type
        self.error = error
