"""A bounded pool of concurrent jobs with a cap per owner (the webhook dispatcher's slots)."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Coroutine, Mapping
from typing import Any

log = logging.getLogger("cracker.webhooks")


class OwnerPool:
    """At most ``size`` jobs at once, at most ``per_owner`` of them for one owner (an account).

    Each job holds one slot from start to end, so a job that hangs holds one slot and one of its
    owner's, never the pool: others' jobs start as soon as a slot is free.
    """

    def __init__(self, size: int, per_owner: int) -> None:
        self.size = size
        self.per_owner = per_owner
        self._jobs: dict[asyncio.Task[None], str] = {}
        self._per_owner: Counter[str] = Counter()

    @property
    def free(self) -> int:
        return self.size - len(self._jobs)

    @property
    def in_flight(self) -> Mapping[str, int]:
        """Jobs running per owner (owners with none are absent)."""
        return self._per_owner

    def start(self, owner: str, job: Coroutine[Any, Any, None], name: str) -> None:
        """Run ``job``; the caller keeps to ``free`` and ``per_owner`` (a claim is sized by them)."""
        task = asyncio.create_task(job, name=name)
        self._jobs[task] = owner
        self._per_owner[owner] += 1
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        owner = self._jobs.pop(task)
        self._per_owner[owner] -= 1
        if self._per_owner[owner] <= 0:
            del self._per_owner[owner]
        if not task.cancelled() and task.exception() is not None:
            log.error("%s failed: %r", task.get_name(), task.exception())

    async def wait_any(self, timeout: float) -> None:
        """Until a job ends or ``timeout`` seconds pass."""
        if self._jobs:
            await asyncio.wait(list(self._jobs), timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        else:
            await asyncio.sleep(timeout)

    async def close(self) -> None:
        jobs = list(self._jobs)
        for task in jobs:
            task.cancel()
        await asyncio.gather(*jobs, return_exceptions=True)
