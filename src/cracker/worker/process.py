"""`cracker worker`: the built-in solvers as a separate process against the shared database.

Any number of them, on any machine that reaches the database. Each registers in the worker
registry (so API processes count its types as served), leases tasks with SKIP LOCKED claims,
heartbeats, and reports outcomes in group-committed batches. It also runs the reaper and
retention jobs, so that leases of a dead worker come back even while no API process runs.
SIGTERM or SIGINT: stop leasing, hand the tasks in hand back to the queue, deregister, exit.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from cracker.config import Settings
from cracker.runtime import ProcessKind, WorkerSpec, build_runtime

log = logging.getLogger("cracker.worker")


async def run_worker(settings: Settings, *, types: frozenset[str] | None, concurrency: int, name: str) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    spec = WorkerSpec(concurrency=concurrency, name=name, types=types)
    runtime = await build_runtime(settings, ProcessKind.WORKER, worker=spec)
    try:
        (worker,) = runtime.workers
        log.info("worker %s serving %s with concurrency %d", worker.owner, ", ".join(worker.types), concurrency)
        await stop.wait()
        log.info("worker %s stopping", worker.owner)
    finally:
        await runtime.stop()
