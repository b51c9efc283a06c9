"""Per-type capacity: which task types have a live worker right now, in this process's view.

Creation asks ``can_serve`` on every request, so the answer comes from a snapshot of the worker
registry refreshed in the background (every ``refresh_s``), never from a query per request. A
worker registered through this process counts at once; one registered through another process
counts within ``refresh_s``; a worker that stops heartbeating stops counting once its
registration expires (one lease) and the next refresh sees it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from cracker.domain.clock import Clock, now
from cracker.domain.errors import ServiceUnavailable
from cracker.domain.workers import WorkerInfo, WorkerKind
from cracker.solvers.registry import SolverRegistry
from cracker.store import Store, leases

log = logging.getLogger("cracker.capacity")


class LiveCapacity:
    """``SolverCapacity`` over the built-in solvers and the live workers of the registry.

    - A type served by a live remote pool: any task of it is accepted (the pool decides).
    - A type served by a live built-in worker (this process's in-process worker, another server's,
      or a `cracker worker` process): accepted when a built-in solver accepts the task, judged by
      this process's registry of the same solvers (the sandbox's test keys, say).
    - Otherwise: refused at creation (``no_solver_available``).
    """

    def __init__(
        self, solvers: SolverRegistry, store: Store, *, local_builtin: bool, refresh_s: float = 1.0,
        clock: Clock = now,
    ) -> None:
        self._clock = clock
        self._solvers = solvers
        self._store = store
        self._local_builtin = local_builtin
        self._refresh_s = refresh_s
        self._live: dict[str, WorkerInfo] = {}
        self._builtin_types: frozenset[str] = frozenset()
        self._remote_types: frozenset[str] = frozenset()
        self._loop_task: asyncio.Task[None] | None = None
        #: When the registry was last read, while reads of it fail (None while they succeed).
        self._blind_since: float | None = None
        self._seen_at = clock()

    def can_serve(self, task_type: str, params: Mapping[str, Any]) -> bool:
        if task_type in self._remote_types:
            return True
        if self._local_builtin or task_type in self._builtin_types:
            return self._solvers.can_serve(task_type, params)
        return False

    def pool_only(self, task_type: str, params: Mapping[str, Any]) -> bool:
        """No built-in solver accepts it: only a remote pool may lease it."""
        return not self._solvers.can_serve(task_type, params)

    def slots(self) -> dict[str, int]:
        """Type -> solver slots of live workers serving it (the ``workers_available`` metric)."""
        out: dict[str, int] = {}
        at = self._clock()
        for worker in self._live.values():
            if worker.live(at):
                for task_type in worker.types:
                    out[task_type] = out.get(task_type, 0) + worker.concurrency
        return out

    def note(self, worker: WorkerInfo) -> None:
        """A worker registered (or heartbeated) through this process: count it without waiting."""
        self._live[worker.id] = worker
        self._recompute()

    def forget(self, worker_id: str) -> None:
        self._live.pop(worker_id, None)
        self._recompute()

    async def refresh(self) -> None:
        at = self._clock()
        try:
            workers = await self._store.read(lambda r: leases.live_workers(r, at))
        except Exception:
            if self._blind_since is None:
                self._blind_since = self._seen_at
            raise
        fresh = {w.id: w for w in workers}
        if self._blind_since is not None:
            # The registry was unreadable (the database gone): its workers could not heartbeat
            # either, so their registrations lapsed without them dying. Each worker live when the
            # registry was last read gets one registration period from now to heartbeat again;
            # without it every create would be refused no_solver_available right after an outage.
            for worker in self._live.values():
                if worker.id not in fresh and worker.live(self._blind_since):
                    fresh[worker.id] = replace(worker, expires_at=at + (worker.expires_at - worker.heartbeat_at))
            self._blind_since = None
        self._live = fresh
        self._seen_at = at
        self._recompute()

    def _recompute(self) -> None:
        # While the registry cannot be read, liveness is judged as of its last reading: who
        # stopped heartbeating since cannot be told from who could not reach the database.
        at = self._clock() if self._blind_since is None else self._blind_since
        live = [w for w in self._live.values() if w.live(at)]
        self._builtin_types = frozenset(t for w in live if w.kind is WorkerKind.BUILTIN for t in w.types)
        self._remote_types = frozenset(t for w in live if w.kind is WorkerKind.REMOTE for t in w.types)

    def start(self) -> None:
        self._loop_task = asyncio.create_task(self._run(), name="cracker-capacity")

    async def stop(self) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
            await asyncio.gather(self._loop_task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._refresh_s)
            try:
                await self.refresh()
            except Exception as exc:
                # Keep the last snapshot: a database hiccup must not make every type unservable.
                log.warning("refreshing the worker registry failed; keeping the last view",
                            exc_info=not isinstance(exc, ServiceUnavailable))
