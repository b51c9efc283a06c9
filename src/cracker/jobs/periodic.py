"""A background job that runs one pass every few seconds, for the life of its process."""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod

from cracker.domain.errors import ServiceUnavailable

log = logging.getLogger("cracker.jobs")


class PeriodicJob(ABC):
    """Runs ``run_once`` every ``interval_s`` (the first time after ``first_after_s``).

    A pass that fails (the database busy or briefly gone, say) is logged and tried again at the
    next one: the job must outlive whatever went wrong.
    """

    name = "job"

    def __init__(self, interval_s: float, *, first_after_s: float | None = None) -> None:
        self.interval_s = interval_s
        self._first_after_s = interval_s if first_after_s is None else first_after_s
        self._loop_task: asyncio.Task[None] | None = None

    @abstractmethod
    async def run_once(self) -> None: ...

    def start(self) -> None:
        self._loop_task = asyncio.create_task(self._run(), name=f"cracker-{self.name}")

    async def stop(self) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
            await asyncio.gather(self._loop_task, return_exceptions=True)
            self._loop_task = None

    async def _run(self) -> None:
        await asyncio.sleep(self._first_after_s)
        while True:
            try:
                await self.run_once()
            except ServiceUnavailable as exc:
                # The database is gone for now (a restart, a refusal): one line, no stack.
                log.warning("%s: %s", self.name, exc.message)
            except Exception:
                log.exception("%s failed; retrying", self.name)
            await asyncio.sleep(self.interval_s)
