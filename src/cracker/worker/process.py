"""`cracker worker`: the built-in solvers as a separate process against the shared database.

Any number of them, on any machine that reaches the database. Each registers in the worker
registry (so API processes count its types as served), leases tasks with SKIP LOCKED claims,
heartbeats, and reports outcomes in group-committed batches. It also runs a reaper, so that leases
of a dead worker come back even while no API process runs. SIGTERM or SIGINT: stop leasing, hand
the tasks in hand back to the queue, deregister, exit.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from cracker.config import Settings
from cracker.metrics import Metrics
from cracker.service.capacity import LiveCapacity
from cracker.service.completions import CompletionBatcher
from cracker.service.offers import OfferService
from cracker.service.pg_notifier import notifier_for
from cracker.service.tasks import TaskService
from cracker.service.workers import WorkerService
from cracker.solvers.builtin import builtin_solvers
from cracker.solvers.ocr import InferenceBatcher, OcrSolver
from cracker.solvers.pow import PowEngine
from cracker.store import open_store
from cracker.worker.runtime import Reaper, WorkerRuntime

log = logging.getLogger("cracker.worker")


async def run_worker(settings: Settings, *, types: frozenset[str] | None, concurrency: int, name: str) -> None:
    store = open_store(settings.database_url, sqlite_busy_timeout_ms=settings.sqlite_busy_timeout_ms)
    pow_engine = PowEngine(settings.cpu_workers or None)
    await pow_engine.start()
    ocr = OcrSolver(InferenceBatcher(second_look=settings.ocr_second_look))
    await ocr.start()
    solvers = builtin_solvers(pow_engine, ocr)
    notifier = notifier_for(settings.database_url)
    await notifier.start()
    # A worker process creates no tasks: its capacity view only records its own registration.
    capacity = LiveCapacity(solvers, store, local_builtin=True)
    tasks = TaskService(
        store, OfferService(store), capacity, notifier, Metrics(), task_timeout_s=settings.task_timeout_s
    )
    completions = CompletionBatcher(tasks)
    completions.start()
    service = WorkerService(
        store, tasks, capacity, completions, lease_s=settings.lease_s, max_attempts=settings.max_attempts
    )
    worker = WorkerRuntime(tasks, solvers, service, concurrency=concurrency, name=name, types=types)
    reaper = Reaper(tasks, settings.reaper_interval_s, service)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await worker.start()
        reaper.start()
        log.info("worker %s serving %s with concurrency %d", worker.owner, ", ".join(worker.types), concurrency)
        await stop.wait()
        log.info("worker %s stopping", worker.owner)
    finally:
        await reaper.stop()
        await worker.stop()
        await completions.stop()
        await notifier.close()
        await ocr.close()
        await pow_engine.close()
        await store.close()
