"""Use cases of workers: register, lease (long-poll), heartbeat, complete, reject, deregister;
and the lease reaper's work: expired leases back to the queue, exhausted ones rejected.

Built-in workers (in-process or `cracker worker` processes) and remote pools over HTTP go through
the same calls; only remote pools may lease tasks that no built-in solver accepts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from cracker.domain.clock import new_id, now
from cracker.domain.errors import LeaseLost, NotFound
from cracker.domain.tasks import ClaimedTask, Task
from cracker.domain.workers import Completion, HeldLease, WorkerInfo, WorkerKind
from cracker.service.capacity import LiveCapacity
from cracker.service.completions import CompletionBatcher
from cracker.service.tasks import TaskService
from cracker.store import Store, leases

log = logging.getLogger("cracker.workers")

#: A worker silent this long is dropped from the registry (it is long dead; its leases are long back).
_FORGET_AFTER_S = 3600.0
#: Rows one reaper pass handles; the next pass (half a second later) takes the rest.
_REAP_BATCH = 500


@dataclass(frozen=True, slots=True)
class ReapReport:
    requeued: int
    rejected: int


class WorkerService:
    def __init__(
        self,
        store: Store,
        tasks: TaskService,
        capacity: LiveCapacity,
        completions: CompletionBatcher,
        *,
        lease_s: float,
        max_attempts: int,
    ) -> None:
        self._store = store
        self._tasks = tasks
        self._capacity = capacity
        self._completions = completions
        self.lease_s = lease_s
        self.max_attempts = max_attempts

    @property
    def heartbeat_interval_s(self) -> float:
        """How often a worker should heartbeat: three chances before its leases expire."""
        return self.lease_s / 3

    async def register(
        self,
        *,
        kind: WorkerKind,
        name: str,
        types: Sequence[str],
        concurrency: int,
        account_id: str | None = None,
        worker_id: str | None = None,
    ) -> WorkerInfo:
        at = now()
        worker = WorkerInfo(
            id=worker_id or new_id(), kind=kind, account_id=account_id, name=name,
            types=tuple(sorted(set(types))), concurrency=concurrency, started_at=at, heartbeat_at=at,
            expires_at=at + self.lease_s,
        )
        await self._store.write(lambda tx: leases.register_worker(tx, worker))
        self._capacity.note(worker)
        return worker

    async def get(self, worker_id: str, *, account_id: str | None = None) -> WorkerInfo:
        """The worker; ``account_id``: it must belong to that account (another's is not found)."""
        worker = await self._store.read(lambda r: leases.get_worker(r, worker_id))
        if worker is None or (account_id is not None and worker.account_id != account_id):
            raise NotFound(f"No worker {worker_id}; register with POST /v2/workers")
        return worker

    async def heartbeat(self, worker_id: str) -> list[HeldLease] | None:
        """Keep the worker and its leases alive; the leases it still holds, or None when the
        registry no longer knows it (register again)."""
        at = now()
        return await self._store.write(lambda tx: leases.heartbeat(tx, worker_id, at, self.lease_s))

    async def deregister(self, worker_id: str) -> int:
        """Remove the worker; the tasks it held go back to the queue at once. Returns how many."""
        requeued = await self._store.write(lambda tx: leases.deregister_worker(tx, worker_id))
        self._capacity.forget(worker_id)
        if requeued:
            self._tasks.notifier.task_created()
        return len(requeued)

    async def claim(
        self, worker_id: str, types: Sequence[str], limit: int, *, builtin_only: bool
    ) -> list[ClaimedTask]:
        return await self._tasks.claim(types, worker_id, limit, self.lease_s, builtin_only=builtin_only)

    async def lease(
        self, worker: WorkerInfo, types: Sequence[str] | None, limit: int, wait_s: float
    ) -> list[ClaimedTask]:
        """A remote pool's long-poll for work: up to ``limit`` tasks, waiting up to ``wait_s`` for
        the first. Counts as a heartbeat."""
        if await self.heartbeat(worker.id) is None:
            raise NotFound(f"No worker {worker.id}; register with POST /v2/workers")
        serve = [t for t in worker.types if types is None or t in types]
        deadline = time.monotonic() + wait_s
        while True:
            claims = await self.claim(worker.id, serve, limit, builtin_only=False)
            remaining = deadline - time.monotonic()
            if claims or remaining <= 0 or not serve:
                return claims
            # The wake-up is the fast path; the bounded wait is the poll that covers a lost one.
            await self._tasks.notifier.wait_for_work(min(remaining, 1.0))

    async def complete(self, completion: Completion) -> Task | None:
        """Record a solution under its lease (group-committed); None when the lease was lost."""
        return await self._completions.complete(completion)

    async def complete_remote(self, completion: Completion) -> Task:
        task = await self.complete(completion)
        if task is None:
            raise LeaseLost(f"Worker {completion.lease_owner} does not hold task {completion.task_id} "
                            f"(attempt {completion.attempt}); the result was dropped")
        return task

    async def reject_unsendable(self, claim: ClaimedTask, reason: str) -> None:
        """End a leased task whose parameters cannot be sent to the worker, uncharged: it would fail
        every lease the same way."""
        log.warning("task %s cannot be sent to worker %s (%s); rejected invalid_params",
                    claim.task.id, claim.lease_owner, reason)
        await self._tasks.reject(
            claim.task.id, "invalid_params", "The task's parameters cannot be sent to a worker", claim=claim
        )

    async def reject_remote(
        self, worker_id: str, task_id: str, attempt: int, code: str, message: str | None
    ) -> Task:
        task = await self._store.read(lambda r: r.get_task(task_id))
        if task is None:
            raise LeaseLost(f"Worker {worker_id} does not hold task {task_id}")
        claim = ClaimedTask(task=task, lease_owner=worker_id, attempt=attempt)
        rejected = await self._tasks.reject(task_id, code, message, claim=claim)
        if rejected is None:
            raise LeaseLost(f"Worker {worker_id} does not hold task {task_id} (attempt {attempt}); "
                            f"the rejection was dropped")
        return rejected

    async def reap(self) -> ReapReport:
        """Expired leases back to the queue; those on their last attempt rejected ``worker_lost``."""
        at = now()
        requeued = await self._store.write(
            lambda tx: leases.requeue_expired_leases(tx, at, self.max_attempts, _REAP_BATCH)
        )
        if requeued:
            self._tasks.notifier.task_created()
        exhausted = await self._store.read(lambda r: leases.exhausted_leases(r, at, self.max_attempts, _REAP_BATCH))
        rejected = 0
        for claim in exhausted:
            message = f"The workers that leased this task stopped responding ({claim.attempt} attempts)"
            if await self._tasks.reject(claim.task.id, "worker_lost", message, claim=claim) is not None:
                rejected += 1
        return ReapReport(requeued=len(requeued), rejected=rejected)

    async def forget_dead_workers(self) -> int:
        before = now() - _FORGET_AFTER_S
        return await self._store.write(lambda tx: leases.purge_dead_workers(tx, before))
