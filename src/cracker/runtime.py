"""The composition root: builds the store, services, solvers and workers of one process."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from cracker.config import Settings
from cracker.metrics import Metrics
from cracker.service.accounts import AccountService
from cracker.service.events import Notifier
from cracker.service.offers import OfferService
from cracker.service.tasks import TaskService
from cracker.service.webhooks import WebhookService
from cracker.solvers.pow import (
    AltchaSolver,
    CapSolver,
    FriendlyCaptchaSolver,
    McaptchaSolver,
    PowEngine,
    PowSha256Solver,
)
from cracker.solvers.registry import SolverRegistry
from cracker.solvers.sandbox import SandboxSolver
from cracker.store.migrate import migrate
from cracker.store.sql import Store, open_store
from cracker.worker.runtime import Reaper, WorkerRuntime
from cracker.worker.webhooks import WebhookDispatcher

log = logging.getLogger("cracker")


@dataclass
class Runtime:
    settings: Settings
    store: Store
    metrics: Metrics
    accounts: AccountService
    offers: OfferService
    tasks: TaskService
    webhooks: WebhookService
    solvers: SolverRegistry
    pow_engine: PowEngine
    workers: list[WorkerRuntime] = field(default_factory=list)
    reaper: Reaper | None = None
    dispatcher: WebhookDispatcher | None = None

    @classmethod
    async def start(cls, settings: Settings, *, run_migrations: bool = True) -> Runtime:
        if run_migrations:
            # Alembic runs its own event loop; keep it off ours.
            await asyncio.to_thread(migrate, settings.database_url)
        store = open_store(settings.database_url, sqlite_busy_timeout_ms=settings.sqlite_busy_timeout_ms)
        metrics = Metrics()
        pow_engine = PowEngine(settings.cpu_workers or None)
        solvers = SolverRegistry([
            SandboxSolver(),
            PowSha256Solver(pow_engine),
            AltchaSolver(pow_engine),
            CapSolver(pow_engine),
            McaptchaSolver(pow_engine),
            FriendlyCaptchaSolver(pow_engine),
        ])
        tasks = TaskService(
            store, solvers, Notifier(), metrics, task_timeout_s=settings.task_timeout_s,
            allow_private_callbacks=settings.webhook_allow_private,
        )
        webhooks = WebhookService(store, backoff_scale=settings.webhook_backoff_scale)
        runtime = cls(
            settings=settings, store=store, metrics=metrics,
            accounts=AccountService(store, auth_cache_s=settings.auth_cache_s),
            offers=OfferService(store), tasks=tasks, webhooks=webhooks, solvers=solvers, pow_engine=pow_engine,
        )
        if settings.in_process_workers:
            await pow_engine.start()
            worker = WorkerRuntime(
                tasks, solvers, concurrency=settings.worker_concurrency,
                # In-process, the lease outlives the task's deadline: the deadline, not the lease,
                # bounds the work, and the process that leased the task is the one that reports it.
                lease_s=settings.task_timeout_s + 30,
            )
            worker.start()
            runtime.workers.append(worker)
        # Deadlines hold whoever solves: a task nobody takes is still rejected on time.
        runtime.reaper = Reaper(tasks, settings.reaper_interval_s)
        runtime.reaper.start()
        runtime.dispatcher = WebhookDispatcher(
            webhooks, docs_base=(settings.docs_base_url or settings.public_url).rstrip("/"),
            allow_private=settings.webhook_allow_private, poll_s=settings.webhook_poll_s,
        )
        runtime.dispatcher.start()
        return runtime

    async def stop(self) -> None:
        if self.dispatcher is not None:
            await self.dispatcher.stop()
        if self.reaper is not None:
            await self.reaper.stop()
        for worker in self.workers:
            await worker.stop()
        await self.pow_engine.close()
        await self.store.close()
