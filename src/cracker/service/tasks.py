"""Use cases of the task lifecycle: create (hold), read, lease, complete (capture), reject (release)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from cracker.domain.catalogue import spec_for
from cracker.domain.clock import new_id, now
from cracker.domain.errors import InsufficientBalance, NoSolverAvailable, NotFound, OfferNotFound
from cracker.domain.money import format_usd
from cracker.domain.tasks import ClaimedTask, Task, TaskStatus, TaskView
from cracker.metrics import Metrics
from cracker.service.events import Notifier
from cracker.store.sql import Store, Writer


def _reject_in(
    tx: Writer, task_id: str, code: str, message: str | None, claim: ClaimedTask | None, at: float
) -> Task | None:
    spec = spec_for(code)
    fence = (claim.lease_owner, claim.attempt) if claim is not None else None
    task = tx.finish_task(
        task_id, status=TaskStatus.REJECTED, now=at, error_code=code,
        error_message=message or spec.message, cost_if_captured=spec.charged, fence=fence,
    )
    if task is not None:
        tx.settle(task, capture=spec.charged, now=at)
    return task


class SolverCapacity(Protocol):
    """What the service asks of the solving side at creation: can anything take this task?"""

    def can_serve(self, task_type: str, params: Mapping[str, Any]) -> bool: ...


class TaskService:
    def __init__(
        self,
        store: Store,
        capacity: SolverCapacity,
        notifier: Notifier,
        metrics: Metrics,
        *,
        task_timeout_s: float,
    ) -> None:
        self._store = store
        self._capacity = capacity
        self._notifier = notifier
        self._metrics = metrics
        self._task_timeout_s = task_timeout_s

    @property
    def notifier(self) -> Notifier:
        return self._notifier

    async def create(self, account_id: str, task_type: str, params: dict[str, Any]) -> Task:
        """Hold the offer's price and queue the task, in one transaction.

        ``params`` are already validated against the type's request model.
        """
        price = await self._store.read(lambda r: r.get_offer_price(task_type))
        if price is None:
            raise OfferNotFound(f"No offer for task type {task_type!r}; GET /v2/offers lists what is sold")
        # Fail fast, before any money moves: a task nothing can solve must not sit in the queue.
        if not self._capacity.can_serve(task_type, params):
            raise NoSolverAvailable(
                f"No built-in solver accepts this {task_type} task and no worker pool serving "
                f"{task_type} is attached"
            )
        task_id = new_id()
        at = now()

        def work(tx: Writer) -> Task | None:
            if not tx.hold(account_id, task_id, price, at):
                return None
            return tx.insert_task(
                task_id=task_id, account_id=account_id, task_type=task_type, params=params, price=price,
                now=at, deadline_at=at + self._task_timeout_s,
            )

        task = await self._store.write(work)
        if task is None:
            raise InsufficientBalance(
                f"This {task_type} task costs {format_usd(price)} USD, more than the available balance"
            )
        self._metrics.created.labels(task_type).inc()
        self._notifier.task_created()
        return task

    async def get(self, account_id: str, task_id: str) -> TaskView:
        task = await self._store.read(lambda r: r.get_task_view(task_id))
        # Another account's task is exactly as unknown as a missing one.
        if task is None or task.account_id != account_id:
            raise NotFound(f"No task {task_id}")
        return task

    async def claim(self, types: Sequence[str], owner: str, limit: int, lease_s: float) -> list[ClaimedTask]:
        at = now()
        return await self._store.write(lambda tx: tx.claim_tasks(types, owner, limit, lease_s, at))

    async def complete(self, claim: ClaimedTask, solution: dict[str, Any]) -> Task | None:
        """Record a solution and capture the hold; None when the lease was lost (result dropped)."""
        at = now()

        def work(tx: Writer) -> Task | None:
            task = tx.finish_task(
                claim.task.id, status=TaskStatus.COMPLETED, now=at, solution=solution,
                cost_if_captured=True, fence=(claim.lease_owner, claim.attempt),
            )
            if task is not None:
                tx.settle(task, capture=True, now=at)
            return task

        task = await self._store.write(work)
        if task is not None:
            self._finished(task)
        return task

    async def reject(
        self, task_id: str, code: str, message: str | None = None, *, claim: ClaimedTask | None = None
    ) -> Task | None:
        """End a live task ``rejected``; the hold is released unless the error is ``charged``."""
        at = now()
        task = await self._store.write(lambda tx: _reject_in(tx, task_id, code, message, claim, at))
        if task is not None:
            self._finished(task)
        return task

    async def reject_overdue(self, limit: int = 500) -> int:
        """Reject every live task past its deadline with ``solve_timeout``, in one transaction."""
        at = now()

        def work(tx: Writer) -> list[Task]:
            finished = []
            for task_id in tx.overdue_task_ids(at, limit):
                task = _reject_in(tx, task_id, "solve_timeout", "The task was not solved before its deadline",
                                  None, at)
                if task is not None:
                    finished.append(task)
            return finished

        finished = await self._store.write(work)
        for task in finished:
            self._finished(task)
        return len(finished)

    async def queue_depths(self) -> dict[tuple[str, str], int]:
        return await self._store.read(lambda r: r.queue_depths())

    def _finished(self, task: Task) -> None:
        if task.status is TaskStatus.COMPLETED:
            self._metrics.completed.labels(task.type).inc()
        else:
            self._metrics.rejected.labels(task.type, task.error_code or "general_error").inc()
        if task.completed_at is not None:
            self._metrics.solve_seconds.labels(task.type).observe(max(0.0, task.completed_at - task.created_at))
        self._notifier.task_finished(task.id)
