"""The composition root: builds the store, services, solvers and workers of one process."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from cracker.config import Settings
from cracker.metrics import Metrics
from cracker.service.accounts import AccountService
from cracker.service.capacity import LiveCapacity
from cracker.service.completions import CompletionBatcher
from cracker.service.events import Notifier
from cracker.service.offers import OfferService
from cracker.service.pg_notifier import notifier_for
from cracker.service.tasks import TaskService
from cracker.service.webhooks import WebhookService
from cracker.service.workers import WorkerService
from cracker.solvers.builtin import builtin_solvers
from cracker.solvers.ocr import InferenceBatcher, OcrSolver
from cracker.solvers.pow import PowEngine
from cracker.solvers.registry import SolverRegistry
from cracker.store import Store, open_store
from cracker.store.migrate import migrate
from cracker.worker.runtime import Reaper, WorkerRuntime
from cracker.jobs.webhooks import WebhookDispatcher

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
    ocr: OcrSolver
    notifier: Notifier
    capacity: LiveCapacity
    completions: CompletionBatcher
    worker_service: WorkerService
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
        ocr = OcrSolver(InferenceBatcher(second_look=settings.ocr_second_look))
        solvers = builtin_solvers(pow_engine, ocr)
        notifier = notifier_for(settings.database_url)
        await notifier.start()
        capacity = LiveCapacity(
            solvers, store, local_builtin=settings.in_process_workers, refresh_s=settings.capacity_refresh_s
        )
        await capacity.refresh()
        capacity.start()
        offers = OfferService(store)
        tasks = TaskService(
            store, offers, capacity, notifier, metrics, task_timeout_s=settings.task_timeout_s,
            allow_private_callbacks=settings.webhook_allow_private,
        )
        webhooks = WebhookService(store, backoff_scale=settings.webhook_backoff_scale)
        completions = CompletionBatcher(tasks)
        completions.start()
        worker_service = WorkerService(
            store, tasks, capacity, completions, lease_s=settings.lease_s, max_attempts=settings.max_attempts
        )
        runtime = cls(
            settings=settings, store=store, metrics=metrics,
            accounts=AccountService(store, auth_cache_s=settings.auth_cache_s),
            offers=offers, tasks=tasks, webhooks=webhooks, solvers=solvers, pow_engine=pow_engine, ocr=ocr,
            notifier=notifier, capacity=capacity, completions=completions, worker_service=worker_service,
        )
        if settings.in_process_workers:
            await pow_engine.start()
            await ocr.start()
            worker = WorkerRuntime(tasks, solvers, worker_service, concurrency=settings.worker_concurrency)
            await worker.start()
            runtime.workers.append(worker)
        # Deadlines hold whoever solves: a task nobody takes is still rejected on time.
        runtime.reaper = Reaper(
            tasks, settings.reaper_interval_s, worker_service, retention_s=settings.task_retention_s
        )
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
        await self.completions.stop()
        await self.capacity.stop()
        await self.notifier.close()
        await self.ocr.close()
        await self.pow_engine.close()
        await self.store.close()
