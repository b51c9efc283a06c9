"""The composition root: one function builds the store, services, solvers, workers and background
jobs of a process, for every kind of process (``cracker serve`` and ``cracker worker``)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from enum import StrEnum

from cracker.config import Settings, callback_policy, refund_policy
from cracker.domain.clock import Clock, now
from cracker.jobs import PeriodicJob, QueueSampler, Reaper, Retention, WebhookDispatcher
from cracker.metrics import Metrics
from cracker.service.accounts import AccountService
from cracker.service.capacity import LiveCapacity
from cracker.service.completions import CompletionBatcher
from cracker.service.dashboard import DashboardService
from cracker.service.events import Notifier
from cracker.service.ocr_models import OcrModelService
from cracker.service.offers import OfferService
from cracker.service.pg_notifier import notifier_for
from cracker.service.reports import ReportService
from cracker.service.task_batches import BatchService
from cracker.service.tasks import TaskService
from cracker.service.webhooks import WebhookService
from cracker.service.workers import WorkerService
from cracker.solvers.builtin import builtin_solvers
from cracker.solvers.ocr import InferenceBatcher, OcrSolver
from cracker.solvers.pow import PowEngine
from cracker.solvers.registry import SolverRegistry
from cracker.store import PgTimeouts, Store, open_store
from cracker.store.migrate import migrate
from cracker.worker.lanes import lane_workers
from cracker.worker.runtime import WorkerRuntime

log = logging.getLogger("cracker")


class ProcessKind(StrEnum):
    #: ``cracker serve``: the HTTP API, an in-process worker when ``in_process_workers`` is set,
    #: and every background job (webhooks are sent and queues sampled from API processes only).
    API = "api"
    #: ``cracker worker``: the built-in solvers against the shared database, with the reaper and
    #: retention, so that a dead worker's leases come back even while no API process runs.
    WORKER = "worker"


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    """The worker a process runs: how many tasks at once, its name in the registry, which types."""

    concurrency: int
    name: str = "in-process"
    #: None: every type the built-in solvers serve.
    types: frozenset[str] | None = None


@dataclass
class Runtime:
    settings: Settings
    kind: ProcessKind
    store: Store
    metrics: Metrics
    accounts: AccountService
    offers: OfferService
    tasks: TaskService
    batches: BatchService
    reports: ReportService
    webhooks: WebhookService
    solvers: SolverRegistry
    pow_engine: PowEngine
    ocr: OcrSolver
    ocr_models: OcrModelService
    notifier: Notifier
    capacity: LiveCapacity
    completions: CompletionBatcher
    worker_service: WorkerService
    dashboard: DashboardService
    workers: list[WorkerRuntime] = field(default_factory=list)
    #: Background jobs, in start order (stopped in reverse).
    jobs: list[PeriodicJob] = field(default_factory=list)
    dispatcher: WebhookDispatcher | None = None

    @classmethod
    async def start(cls, settings: Settings, *, run_migrations: bool = True, clock: Clock = now) -> Runtime:
        """An API process (``cracker serve``)."""
        worker = WorkerSpec(settings.worker_concurrency) if settings.in_process_workers else None
        return await build_runtime(settings, ProcessKind.API, worker=worker, run_migrations=run_migrations, clock=clock)

    async def stop(self) -> None:
        if self.dispatcher is not None:
            await self.dispatcher.stop()
        for job in reversed(self.jobs):
            await job.stop()
        for worker in self.workers:
            await worker.stop()
        await self.completions.stop()
        await self.capacity.stop()
        await self.notifier.close()
        await self.ocr.close()
        await self.pow_engine.close()
        await self.store.close()


async def build_runtime(
    settings: Settings, kind: ProcessKind, *, worker: WorkerSpec | None, run_migrations: bool = False,
    clock: Clock = now,
) -> Runtime:
    """Build and start everything a process of ``kind`` runs; ``worker``: the worker it runs, if any.

    ``clock``: what the task, worker and capacity services read the time from (registrations,
    leases, heartbeats, deadlines, lease expiry). Always ``now`` outside tests; a test hands in a
    clock it moves itself, so a lease expires when the test says, not when the wall clock does.
    """
    if run_migrations:
        # Alembic runs its own event loop; keep it off ours.
        await asyncio.to_thread(migrate, settings.database_url)
    timeouts = PgTimeouts(
        connect_s=settings.database_connect_timeout_s, pool_s=settings.database_pool_timeout_s,
        statement_s=settings.database_statement_timeout_s,
    )
    store = open_store(
        settings.database_url, sqlite_busy_timeout_ms=settings.sqlite_busy_timeout_ms, pg_timeouts=timeouts
    )
    metrics = Metrics()
    pow_engine = PowEngine(settings.cpu_workers or None)
    # Named models: every process reads the registry (the API to validate and list, workers to serve).
    ocr_models = OcrModelService(store)
    ocr = OcrSolver(InferenceBatcher(second_look=settings.ocr_second_look), ocr_models,
                    second_look=settings.ocr_second_look)
    solvers = builtin_solvers(pow_engine, ocr)
    notifier = notifier_for(settings.database_url, connect_timeout_s=timeouts.connect_s)
    await notifier.start()
    # An API process accepts a task when a live worker serves its type, its own or another's (the
    # registry, re-read in the background); a worker process creates no tasks, so its view only
    # records its own registration.
    capacity = LiveCapacity(
        solvers, store, local_builtin=kind is ProcessKind.WORKER or settings.in_process_workers,
        refresh_s=settings.capacity_refresh_s, clock=clock,
    )
    if kind is ProcessKind.API:
        await capacity.refresh()
        capacity.start()
    offers = OfferService(store)
    callbacks = callback_policy(settings)
    tasks = TaskService(
        store, offers, capacity, notifier, metrics, task_timeout_s=settings.task_timeout_s, callbacks=callbacks,
        max_running_per_account=settings.max_running_per_account, models=ocr_models, clock=clock,
    )
    reports = ReportService(store, metrics, refund_policy(settings), clock=clock)
    completions = CompletionBatcher(tasks)
    completions.start()
    worker_service = WorkerService(
        store, tasks, capacity, completions, lease_s=settings.lease_s, max_attempts=settings.max_attempts,
        clock=clock,
    )
    runtime = Runtime(
        settings=settings, kind=kind, store=store, metrics=metrics,
        accounts=AccountService(store, auth_cache_s=settings.auth_cache_s, max_keys=settings.max_api_keys_per_account),
        offers=offers, tasks=tasks, batches=BatchService(store, tasks), reports=reports,
        webhooks=WebhookService(store, backoff_scale=settings.webhook_backoff_scale), solvers=solvers,
        pow_engine=pow_engine, ocr=ocr, ocr_models=ocr_models, notifier=notifier, capacity=capacity,
        completions=completions,
        worker_service=worker_service,
        dashboard=DashboardService(store, session_ttl_s=settings.dashboard_session_ttl_s),
    )
    if worker is not None:
        await pow_engine.start()
        await ocr.start()
        # Lanes: image-to-text has slots of its own that a proof-of-work backlog cannot take.
        runtime.workers = lane_workers(
            tasks, solvers, worker_service, concurrency=worker.concurrency,
            ocr_concurrency=settings.ocr_worker_concurrency, name=worker.name, types=worker.types,
        )
        for lane in runtime.workers:
            await lane.start()
    # Deadlines hold whoever solves: a task nobody takes is still rejected on time.
    runtime.jobs = [
        Reaper(tasks, worker_service, interval_s=settings.reaper_interval_s),
        Retention(
            tasks, worker_service, retention_s=settings.task_retention_s, first_after_s=settings.reaper_interval_s,
            reports=reports, report_retention_s=settings.report_retention_s,
            dashboard=runtime.dashboard, queue_sample_retention_s=settings.queue_sample_retention_s,
        ),
    ]
    if kind is ProcessKind.API and settings.queue_sample_interval_s > 0:
        # The operator's queue charts; API processes only (a worker-only deployment has no dashboard).
        runtime.jobs.append(QueueSampler(runtime.dashboard, interval_s=settings.queue_sample_interval_s))
    for job in runtime.jobs:
        job.start()
    if kind is ProcessKind.API:
        runtime.dispatcher = WebhookDispatcher(
            runtime.webhooks, docs_base=(settings.docs_base_url or settings.public_url).rstrip("/"), policy=callbacks,
            poll_s=settings.webhook_poll_s, timeout_s=settings.webhook_timeout_s,
            concurrency=settings.webhook_concurrency, account_concurrency=settings.webhook_account_concurrency,
            max_response_bytes=settings.webhook_max_response_bytes,
        )
        runtime.dispatcher.start()
    return runtime
