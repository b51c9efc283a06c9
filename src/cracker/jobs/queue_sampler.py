"""Queue sampling: every few seconds, what is queued and running per task type goes into the
queue samples, from which the operator's view draws its charts over time.

Runs in API processes only. With several of them on PostgreSQL each samples, but the row of a
(slot, type) is written once (the first insert wins), so no sample is counted twice.
"""

from __future__ import annotations

from cracker.jobs.periodic import PeriodicJob
from cracker.service.dashboard import DashboardService


class QueueSampler(PeriodicJob):
    name = "queue-sampler"

    def __init__(self, dashboard: DashboardService, *, interval_s: float) -> None:
        super().__init__(interval_s, first_after_s=0.0)
        self._dashboard = dashboard

    async def run_once(self) -> None:
        await self._dashboard.sample_queues(self.interval_s)
