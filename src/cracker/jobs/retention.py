"""Retention: what has served its time leaves the hot tables, every five minutes.

Finished tasks older than the retention setting (their ledger rows stay), idempotency keys past
their 24 hours, workers silent for an hour, reports past their own retention (their refunds stay
in the ledger) and queue samples past theirs.
"""

from __future__ import annotations

from cracker.jobs.periodic import PeriodicJob
from cracker.service.dashboard import DashboardService
from cracker.service.reports import ReportService
from cracker.service.tasks import TaskService
from cracker.service.workers import WorkerService

#: How often the purges run.
PURGE_EVERY_S = 300.0


class Retention(PeriodicJob):
    name = "retention"

    def __init__(
        self, tasks: TaskService, workers: WorkerService, *, retention_s: float, first_after_s: float,
        interval_s: float = PURGE_EVERY_S, reports: ReportService | None = None, report_retention_s: float = 0.0,
        dashboard: DashboardService | None = None, queue_sample_retention_s: float = 0.0,
    ) -> None:
        super().__init__(interval_s, first_after_s=first_after_s)
        #: Finished tasks are deleted this long after they ended; 0 keeps them.
        self.retention_s = retention_s
        self._tasks = tasks
        self._workers = workers
        self._reports = reports
        #: Reports are deleted this long after they were made; 0 keeps them.
        self.report_retention_s = report_retention_s
        self._dashboard = dashboard
        #: Queue samples are deleted this long after they were taken; 0 keeps them.
        self.queue_sample_retention_s = queue_sample_retention_s

    async def run_once(self) -> None:
        await self._tasks.purge_idempotency_keys()
        await self._tasks.purge_finished(self.retention_s)
        await self._workers.forget_dead_workers()
        if self._reports is not None:
            await self._reports.purge(self.report_retention_s)
        if self._dashboard is not None:
            await self._dashboard.purge_queue_samples(self.queue_sample_retention_s)
