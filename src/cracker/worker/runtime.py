"""The worker runtime: lease tasks, run solvers, report outcomes, heartbeat.

Used in-process by `cracker serve` and as the body of `cracker worker` processes. It registers in
the worker registry (so that the API counts its types as served), keeps its leases alive with a
heartbeat, and leases only tasks that a built-in solver accepts.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from cracker.domain.clock import new_id
from cracker.domain.errors import ServiceUnavailable, TaskRejected
from cracker.domain.tasks import ClaimedTask
from cracker.domain.workers import Completion, WorkerKind
from cracker.service.tasks import TaskService
from cracker.service.workers import WorkerService
from cracker.solvers.base import Solution, SolveJob
from cracker.solvers.registry import SolverRegistry

log = logging.getLogger("cracker.worker")
T = TypeVar("T")


class WorkerRuntime:
    def __init__(
        self,
        tasks: TaskService,
        solvers: SolverRegistry,
        workers: WorkerService,
        *,
        concurrency: int,
        poll_s: float = 1.0,
        name: str = "in-process",
        types: frozenset[str] | None = None,
    ) -> None:
        self._tasks = tasks
        self._solvers = solvers
        self._workers = workers
        self._concurrency = concurrency
        self._poll_s = poll_s
        self._name = name
        self._types = sorted(solvers.types if types is None else types & solvers.types)
        self.owner = f"{socket.gethostname()[:32]}:{new_id()[-12:]}"
        self._running: set[asyncio.Task[None]] = set()
        self._slot_free = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._heartbeat_task: asyncio.Task[None] | None = None

    @property
    def concurrency(self) -> int:
        return self._concurrency

    @property
    def types(self) -> list[str]:
        return self._types

    async def start(self) -> None:
        await self._register()
        self._loop_task = asyncio.create_task(self._run(), name="cracker-worker")
        self._heartbeat_task = asyncio.create_task(self._heartbeat(), name="cracker-worker-heartbeat")

    async def stop(self) -> None:
        """Stop leasing, abandon the tasks in hand, and hand them back to the queue at once."""
        for loop_task in (self._loop_task, self._heartbeat_task):
            if loop_task is not None:
                loop_task.cancel()
                await asyncio.gather(loop_task, return_exceptions=True)
        for task in list(self._running):
            task.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)
        try:
            await self._workers.deregister(self.owner)
        except Exception:
            # Its leases expire by themselves; the reaper requeues them.
            log.warning("could not deregister worker %s", self.owner, exc_info=True)

    async def _register(self) -> None:
        await self._workers.register(
            kind=WorkerKind.BUILTIN, name=self._name, types=self._types, concurrency=self._concurrency,
            worker_id=self.owner,
        )

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self._workers.heartbeat_interval_s)
            try:
                if await self._workers.heartbeat(self.owner) is None:
                    # Forgotten (this process stalled past its registration): join again. Tasks it
                    # still solves were requeued meanwhile; their results will be refused.
                    log.warning("worker %s was dropped from the registry; registering again", self.owner)
                    await self._register()
            except ServiceUnavailable as exc:
                log.warning("heartbeat failed: %s", exc.message)
            except Exception:
                log.warning("heartbeat failed; retrying", exc_info=True)

    async def _run(self) -> None:
        types = self._types
        while True:
            free = self._concurrency - len(self._running)
            if free <= 0:
                self._slot_free.clear()
                await self._slot_free.wait()
                continue
            # Cleared before the claim: a task of this worker that ends meanwhile still wakes it.
            self._slot_free.clear()
            try:
                claims = await self._workers.claim(
                    self.owner, types, free, builtin_only=True, lane_slots=self._concurrency
                )
            except Exception as exc:
                # The database may be busy or briefly gone; the loop must outlive that.
                if isinstance(exc, ServiceUnavailable):
                    log.warning("claiming tasks failed: %s", exc.message)
                else:
                    log.exception("claiming tasks failed; retrying")
                await asyncio.sleep(self._poll_s)
                continue
            for claim in claims:
                task = asyncio.create_task(self._solve(claim), name=f"solve-{claim.task.id}")
                self._running.add(task)
                task.add_done_callback(self._done)
            if len(claims) < free:
                # The queue is drained (for now), or what is left belongs to accounts at their
                # in-flight cap: claiming again at once would find nothing, so wait for the next
                # "new work" wake-up, for one of this worker's tasks to end (its account may be
                # back under the cap), or the poll.
                await self._wait_for_work_or_a_free_slot()

    async def _wait_for_work_or_a_free_slot(self) -> None:
        work = asyncio.ensure_future(self._tasks.notifier.wait_for_work(self._poll_s))
        slot = asyncio.ensure_future(self._slot_free.wait())
        try:
            await asyncio.wait({work, slot}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in (work, slot):
                waiter.cancel()
            await asyncio.gather(work, slot, return_exceptions=True)

    async def _solve_unless_ended(
        self, solving: Coroutine[Any, Any, Solution], task_id: str, remaining: float
    ) -> Solution | None:
        """Run the solver until it answers, the deadline passes, or the task ends some other way
        (a client's cancel): then the solver is cancelled, and its process-pool work with it."""
        ended = self._tasks.notifier.watch(task_id)
        solve = asyncio.ensure_future(solving)
        ended_wait = asyncio.ensure_future(ended.wait())
        try:
            done, _ = await asyncio.wait({solve, ended_wait}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._tasks.notifier.unwatch(task_id, ended)
            ended_wait.cancel()
            if not solve.done():
                solve.cancel()
                await asyncio.gather(solve, return_exceptions=True)
        if solve in done:
            return solve.result()
        if ended_wait in done:
            return None
        raise TaskRejected("solve_timeout")

    def _done(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._slot_free.set()

    async def _solve(self, claim: ClaimedTask) -> None:
        task = claim.task
        solver = self._solvers.find(task.type, task.params)
        try:
            if solver is None:
                raise TaskRejected("general_error", f"No solver in this worker accepts this {task.type} task")
            job = SolveJob(
                task_id=task.id, type=task.type, params=task.params, deadline=task.deadline_at,
                account_id=task.account_id,
            )
            remaining = task.deadline_at - time.time()
            if remaining <= 0:
                raise TaskRejected("solve_timeout")
            solution = await self._solve_unless_ended(solver.solve(job), task.id, remaining)
            if solution is None:
                return  # ended meanwhile (cancelled, say): its outcome is already recorded
            token = solution.get("token")
            if not isinstance(token, str) or not token:
                raise TaskRejected("empty_token", f"The {solver.name} solver returned no token")
            completion = Completion(
                task_id=task.id, lease_owner=claim.lease_owner, attempt=claim.attempt, solution=solution
            )
            completed = await self._while_unreachable(lambda: self._workers.complete(completion))
            if completed is None:
                log.warning("lease of task %s was lost before it was solved; result dropped", task.id)
        except TaskRejected as rejection:
            await self._report_rejection(claim, rejection.code, rejection.message)
        except asyncio.CancelledError:
            raise
        except ServiceUnavailable:
            # Not the solver's fault: the task stays leased to us until its lease runs out, then
            # the reaper puts it back in the queue and it is solved again.
            log.warning("the database stayed unreachable; the solution of task %s was dropped", task.id)
        except Exception:
            # A solver bug or hostile input must end the task, never the worker.
            log.exception("solver failed on task %s", task.id)
            await self._report_rejection(claim, "general_error", "The solver failed unexpectedly")

    async def _while_unreachable(self, write: Callable[[], Awaitable[T]]) -> T:
        """``write`` retried while the database is unreachable, for up to one lease period.

        The lease outlives a short outage (a restart, a failover): the fenced write succeeds once
        the database is back, instead of the work being thrown away. Past the lease the task is
        requeued anyway, and the write would be refused.
        """
        deadline = time.monotonic() + self._workers.lease_s
        delay = 0.1
        while True:
            try:
                return await write()
            except ServiceUnavailable:
                if time.monotonic() + delay > deadline:
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)

    async def _report_rejection(self, claim: ClaimedTask, code: str, message: str) -> None:
        try:
            await self._while_unreachable(lambda: self._tasks.reject(claim.task.id, code, message, claim=claim))
        except Exception:
            log.exception("could not record the rejection of task %s", claim.task.id)

