"""Use cases of workers: register, lease (long-poll), heartbeat, complete, reject, deregister;
and the lease reaper's work: expired leases back to the queue, exhausted ones rejected.

Built-in workers (in-process or `cracker worker` processes) and remote pools over HTTP go through
the same calls; only remote pools may lease tasks that no built-in solver accepts.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from cracker.domain.catalogue import CHARGE_RULES, charge_applies
from cracker.domain.clock import Clock, new_id, now
from cracker.domain.errors import FieldError, LeaseLost, NotFound, ValidationFailed
from cracker.domain.tasks import ClaimedTask, Task, TaskStatus
from cracker.domain.workers import Completion, HeldLease, TaskEvent, TaskEventKind, WorkerInfo, WorkerKind
from cracker.service.capacity import LiveCapacity
from cracker.service.completions import CompletionBatcher
from cracker.service.pools import PoolPolicyService
from cracker.service.tasks import TaskService
from cracker.store import Store, leases

log = logging.getLogger("cracker.workers")

#: A worker silent this long is dropped from the registry (it is long dead; its leases are long back).
_FORGET_AFTER_S = 3600.0
#: Rows one reaper pass handles; the next pass (half a second later) takes the rest.
_REAP_BATCH = 500


def _event(
    worker: WorkerInfo, event: TaskEventKind, task_id: str, attempt: int, at: float, code: str | None = None
) -> TaskEvent:
    return TaskEvent(
        task_id=task_id, at=at, event=event, worker_id=worker.id, worker_name=worker.name,
        pool_account_id=worker.account_id, attempt=attempt, error_code=code,
    )


def _not_applicable(code: str, task: Task) -> str:
    rule = CHARGE_RULES.get(code)
    where = f"applies only to {rule.describe()}" if rule is not None else "is never accepted from a worker"
    return (f"{code} charges the client and {where}; this {task.type} task is not one. Report an "
            f"uncharged code (upstream_error, general_error, ...): the task is still leased to you")


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
        clock: Clock = now,
    ) -> None:
        #: Registrations, heartbeats and lease expiry read this; ``now`` in production.
        self.clock = clock
        self._store = store
        self._tasks = tasks
        self._capacity = capacity
        self._completions = completions
        self.lease_s = lease_s
        self.max_attempts = max_attempts
        self.pools = PoolPolicyService(store)

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
        at = self.clock()
        worker = WorkerInfo(
            id=worker_id or new_id(), kind=kind, account_id=account_id, name=name,
            types=tuple(sorted(set(types))), concurrency=concurrency, started_at=at, heartbeat_at=at,
            expires_at=at + self.lease_s,
        )
        await self._store.write(lambda tx: leases.register_worker(tx, worker))
        self._capacity.note(worker)
        return worker

    async def register_pool(self, *, account_id: str, name: str, types: Sequence[str], concurrency: int) -> WorkerInfo:
        """A remote pool of a worker key's account: only for the types the account's pools may serve."""
        await self.pools.check(account_id, types)
        return await self.register(
            kind=WorkerKind.REMOTE, name=name, types=types, concurrency=concurrency, account_id=account_id
        )

    async def get(self, worker_id: str, *, account_id: str | None = None) -> WorkerInfo:
        """The worker; ``account_id``: it must belong to that account (another's is not found)."""
        worker = await self._store.read(lambda r: leases.get_worker(r, worker_id))
        if worker is None or (account_id is not None and worker.account_id != account_id):
            raise NotFound(f"No worker {worker_id}; register with POST /v2/workers")
        return worker

    async def heartbeat(self, worker_id: str) -> list[HeldLease] | None:
        """Keep the worker and its leases alive; the leases it still holds, or None when the
        registry no longer knows it (register again)."""
        at = self.clock()
        return await self._store.write(lambda tx: leases.heartbeat(tx, worker_id, at, self.lease_s))

    async def deregister(self, worker_id: str) -> int:
        """Remove the worker; the tasks it held go back to the queue at once. Returns how many."""
        requeued = await self._store.write(lambda tx: leases.deregister_worker(tx, worker_id))
        self._capacity.forget(worker_id)
        if requeued:
            self._tasks.notifier.task_created()
        return len(requeued)

    async def claim(
        self, worker_id: str, types: Sequence[str], limit: int, *, builtin_only: bool,
        accounts: Sequence[str] | None = None, lane_slots: int | None = None,
    ) -> list[ClaimedTask]:
        return await self._tasks.claim(
            types, worker_id, limit, self.lease_s, builtin_only=builtin_only, accounts=accounts,
            lane_slots=lane_slots,
        )

    async def lease(
        self, worker: WorkerInfo, types: Sequence[str] | None, limit: int, wait_s: float
    ) -> list[ClaimedTask]:
        """A remote pool's long-poll for work: up to ``limit`` tasks, waiting up to ``wait_s`` for
        the first. Counts as a heartbeat."""
        if await self.heartbeat(worker.id) is None:
            raise NotFound(f"No worker {worker.id}; register with POST /v2/workers")
        # Read at every lease call, not only at registration: an operator's withdrawn grant stops
        # the pools already registered at their next call.
        allowed, accounts = await self.pools.lease_scope(worker.account_id)
        serve = [t for t in worker.types if (types is None or t in types) and t in allowed]
        deadline = time.monotonic() + wait_s
        while True:
            claims = await self.claim(worker.id, serve, limit, builtin_only=False, accounts=accounts)
            remaining = deadline - time.monotonic()
            if claims:
                await self._record_leases(worker, claims)
                return claims
            if remaining <= 0 or not serve:
                return claims
            # The wake-up is the fast path; the bounded wait is the poll that covers a lost one.
            await self._tasks.notifier.wait_for_work(min(remaining, 1.0))

    async def _record_leases(self, worker: WorkerInfo, claims: Sequence[ClaimedTask]) -> None:
        """Every lease handed to a pool is in the task's history: if the record cannot be written,
        the tasks go back to the queue at once and the call fails, so no pool reads a task's
        parameters unrecorded."""
        at = self.clock()
        events = [_event(worker, "leased", claim.task.id, claim.attempt, at) for claim in claims]
        try:
            await self.pools.record(events)
        except BaseException:
            with contextlib.suppress(Exception):
                await self.pools.release(worker.id, [claim.task.id for claim in claims])
                self._tasks.notifier.task_created()
            raise

    async def _record_outcome(self, worker: WorkerInfo, task: Task, attempt: int) -> None:
        """The outcome is committed first; its history row follows. If that write fails the
        outcome stands (it is logged): the lease row of the same attempt already names the only
        worker that could have ended the task."""
        event: TaskEventKind = "completed" if task.status is TaskStatus.COMPLETED else "rejected"
        try:
            await self.pools.record([_event(worker, event, task.id, attempt, self.clock(), task.error_code)])
        except Exception:
            log.exception("recording the %s of task %s by worker %s failed", event, task.id, worker.id)

    async def complete(self, completion: Completion) -> Task | None:
        """Record a solution under its lease (group-committed); None when the lease was lost."""
        return await self._completions.complete(completion)

    async def complete_remote(self, worker: WorkerInfo, completion: Completion) -> Task:
        task = await self.complete(completion)
        if task is None:
            raise LeaseLost(f"Worker {completion.lease_owner} does not hold task {completion.task_id} "
                            f"(attempt {completion.attempt}); the result was dropped")
        await self._record_outcome(worker, task, completion.attempt)
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
        self, worker: WorkerInfo, task_id: str, attempt: int, code: str, message: str | None
    ) -> Task:
        worker_id = worker.id
        task = await self._store.read(lambda r: r.get_task(task_id))
        # The lease is checked first: a worker that does not hold the task learns nothing of it
        # (not even whether it had a proxy). The store's fenced rejection below still decides.
        if (task is None or task.status is not TaskStatus.RUNNING or task.lease_owner != worker_id
                or task.attempts != attempt):
            raise LeaseLost(f"Worker {worker_id} does not hold task {task_id} (attempt {attempt}); "
                            f"the rejection was dropped")
        if not charge_applies(code, task.type, task.params):
            raise ValidationFailed([FieldError("code", "charge_not_applicable", _not_applicable(code, task))])
        claim = ClaimedTask(task=task, lease_owner=worker_id, attempt=attempt)
        rejected = await self._tasks.reject(task_id, code, message, claim=claim)
        if rejected is None:
            raise LeaseLost(f"Worker {worker_id} does not hold task {task_id} (attempt {attempt}); "
                            f"the rejection was dropped")
        await self._record_outcome(worker, rejected, attempt)
        return rejected

    async def reap(self) -> ReapReport:
        """Expired leases back to the queue; those on their last attempt rejected ``worker_lost``."""
        at = self.clock()
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
        before = self.clock() - _FORGET_AFTER_S
        return await self._store.write(lambda tx: leases.purge_dead_workers(tx, before))
