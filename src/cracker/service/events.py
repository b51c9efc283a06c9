"""In-process wake-ups: workers wait for new tasks, waiters for a task to turn terminal.

Notifications are hints, never the only path: every waiter also polls, so a lost wake-up costs
latency, never correctness.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict

#: How many tasks created here a process remembers as unfinished (the oldest are forgotten first).
_UNFINISHED_CAP = 100_000


class Notifier:
    def __init__(self) -> None:
        self._work = asyncio.Event()
        self._finished: defaultdict[str, set[asyncio.Event]] = defaultdict(set)
        # Tasks created by this process whose end it has not heard of yet: task id -> account id.
        self._unfinished: dict[str, str] = {}

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
        self._unfinished.pop(task_id, None)
        for event in self._finished.pop(task_id, ()):
            event.set()

    def created_here(self, task_id: str, account_id: str) -> None:
        """A task this process is creating: until its end is heard of, it is known to be live.

        Called before the row is written: a worker elsewhere may end the task, and its
        notification arrive, before the creating coroutine resumes.
        """
        self._unfinished[task_id] = account_id
        if len(self._unfinished) > _UNFINISHED_CAP:
            del self._unfinished[next(iter(self._unfinished))]

    def not_created(self, task_id: str) -> None:
        """The create announced by ``created_here`` did not happen (refused, failed, or replayed)."""
        self._unfinished.pop(task_id, None)

    def known_unfinished(self, task_id: str, account_id: str) -> bool:
        """True when the task was created here, by this account, and no end of it was heard of.

        A long-poll can then wait without reading the task first: its end will wake it. (An end
        whose notification is lost, say its process died between commit and NOTIFY, is found by
        the waiter's fallback poll, exactly as for a waiter that read the task first.)
        """
        return self._unfinished.get(task_id) == account_id

    def forget_unfinished(self) -> None:
        """Ends may have gone unheard (a lost connection): nothing is known to be live any more."""
        self._unfinished.clear()

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
