"""The reaper: deadlines and leases, every half second by default.

Live tasks past their deadline are rejected ``solve_timeout`` (pending ones included: a task
nobody takes is still answered on time); tasks whose lease expired (their worker died) go back to
the queue, or are rejected ``worker_lost`` on their last attempt.
"""

from __future__ import annotations

from cracker.jobs.periodic import PeriodicJob
from cracker.service.tasks import TaskService
from cracker.service.workers import WorkerService


class Reaper(PeriodicJob):
    name = "reaper"

    def __init__(self, tasks: TaskService, workers: WorkerService, *, interval_s: float) -> None:
        super().__init__(interval_s)
        self._tasks = tasks
        self._workers = workers

    async def run_once(self) -> None:
        await self._tasks.reject_overdue()
        await self._workers.reap()
