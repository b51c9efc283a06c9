"""Use cases of the task lifecycle: create (hold), read, lease, complete (capture), reject (release)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from cracker.domain.catalogue import spec_for
from cracker.domain.clock import new_id, now
from cracker.domain.errors import InsufficientBalance, NoSolverAvailable, NotFound, OfferNotFound
from cracker.domain.tasks import ClaimedTask, Task, TaskStatus
from cracker.metrics import Metrics
from cracker.service.events import Notifier
from cracker.store.sql import Store, Writer


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
        async with self._store.read() as reader:
            price = await reader.get_offer_price(task_type)
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
        async with self._store.write() as tx:
            if not await tx.hold(account_id, task_id, price, at):
                raise InsufficientBalance(f"This {task_type} task costs {price} units more than the balance")
            task = await tx.insert_task(
                task_id=task_id, account_id=account_id, task_type=task_type, params=params, price=price,
                now=at, deadline_at=at + self._task_timeout_s,
            )
        self._metrics.created.labels(task_type).inc()
        self._notifier.task_created()
        return task

    async def get(self, account_id: str, task_id: str) -> Task:
        async with self._store.read() as reader:
            task = await reader.get_task(task_id)
        # Another account's task is exactly as unknown as a missing one.
        if task is None or task.account_id != account_id:
            raise NotFound(f"No task {task_id}")
        return task

    async def claim(self, types: Sequence[str], owner: str, limit: int, lease_s: float) -> list[ClaimedTask]:
        async with self._store.write() as tx:
            return await tx.claim_tasks(types, owner, limit, lease_s, now())

    async def complete(self, claim: ClaimedTask, solution: dict[str, Any]) -> Task | None:
        """Record a solution and capture the hold; None when the lease was lost (result dropped)."""
        async with self._store.write() as tx:
            task = await tx.finish_task(
                claim.task.id, status=TaskStatus.COMPLETED, now=now(), solution=solution,
                cost_if_captured=True, fence=(claim.lease_owner, claim.attempt),
            )
            if task is None:
                return None
            await tx.settle(task, capture=True, now=now())
        self._finished(task)
        return task

    async def reject(
        self, task_id: str, code: str, message: str | None = None, *, claim: ClaimedTask | None = None
    ) -> Task | None:
        """End a live task ``rejected``; the hold is released unless the error is ``charged``."""
        async with self._store.write() as tx:
            task = await self._reject_in(tx, task_id, code, message, claim)
        if task is not None:
            self._finished(task)
        return task

    @staticmethod
    async def _reject_in(
        tx: Writer, task_id: str, code: str, message: str | None, claim: ClaimedTask | None
    ) -> Task | None:
        spec = spec_for(code)
        fence = (claim.lease_owner, claim.attempt) if claim is not None else None
        task = await tx.finish_task(
            task_id, status=TaskStatus.REJECTED, now=now(), error_code=code,
            error_message=message or spec.message, cost_if_captured=spec.charged, fence=fence,
        )
        if task is not None:
            await tx.settle(task, capture=spec.charged, now=now())
        return task

    async def reject_overdue(self, limit: int = 500) -> int:
        """Reject every live task past its deadline with ``solve_timeout``, in one transaction."""
        finished: list[Task] = []
        async with self._store.write() as tx:
            for task_id in await tx.overdue_task_ids(now(), limit):
                task = await self._reject_in(
                    tx, task_id, "solve_timeout", "The task was not solved before its deadline", None
                )
                if task is not None:
                    finished.append(task)
        for task in finished:
            self._finished(task)
        return len(finished)

    async def queue_depths(self) -> dict[tuple[str, str], int]:
        async with self._store.read() as reader:
            return await reader.queue_depths()

    def _finished(self, task: Task) -> None:
        if task.status is TaskStatus.COMPLETED:
            self._metrics.completed.labels(task.type).inc()
        else:
            self._metrics.rejected.labels(task.type, task.error_code or "general_error").inc()
        if task.completed_at is not None:
            self._metrics.solve_seconds.labels(task.type).observe(max(0.0, task.completed_at - task.created_at))
        self._notifier.task_finished(task.id)
