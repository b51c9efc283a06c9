"""In-process wake-ups: workers wait for new tasks, waiters for a task to turn terminal.

Notifications are hints, never the only path: every waiter also polls, so a lost wake-up costs
latency, never correctness.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict


class Notifier:
    def __init__(self) -> None:
        self._work = asyncio.Event()
        self._finished: defaultdict[str, set[asyncio.Event]] = defaultdict(set)

    async def start(self) -> None:
        """Nothing to start in one process; the PostgreSQL notifier connects here."""

    async def close(self) -> None:
        """Nothing to close in one process."""

    def task_created(self) -> None:
        self._work.set()

    async def wait_for_work(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self._work.wait(), timeout)
        except TimeoutError:
            return
        finally:
            self._work.clear()

    def task_finished(self, task_id: str) -> None:
        for event in self._finished.pop(task_id, ()):
            event.set()

    def watch(self, task_id: str) -> asyncio.Event:
        """An event set when the task ends; pair every watch with an ``unwatch``."""
        event = asyncio.Event()
        self._finished[task_id].add(event)
        return event

    def unwatch(self, task_id: str, event: asyncio.Event) -> None:
        waiters = self._finished.get(task_id)
        if waiters is not None:
            waiters.discard(event)
            if not waiters:
                del self._finished[task_id]

    async def wait_for_finish(self, task_id: str, timeout: float) -> None:
        event = self.watch(task_id)
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            return
        finally:
            self.unwatch(task_id, event)
