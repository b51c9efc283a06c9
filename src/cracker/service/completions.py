"""Group commit of completions: every completion that arrives while one transaction is being
written goes into the next one.

One transaction per solved task spends a commit (and on PostgreSQL half a dozen round trips) on
each; batching the acknowledgements is where a queue's throughput comes from. There is no added
delay: an idle batcher writes a lone completion at once; under load the batch grows by itself to
whatever arrived during the previous write.
"""

from __future__ import annotations

import asyncio

from cracker.domain.tasks import Task
from cracker.domain.workers import Completion
from cracker.service.tasks import TaskService

_Item = tuple[Completion, "asyncio.Future[Task | None]"]


class CompletionBatcher:
    def __init__(self, tasks: TaskService, *, max_batch: int = 200) -> None:
        self._tasks = tasks
        self._max_batch = max_batch
        self._queue: list[_Item] = []
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._stopping = False

    def start(self) -> None:
        self._loop_task = asyncio.create_task(self._run(), name="cracker-completions")

    async def stop(self) -> None:
        """Write what is queued, then stop (later completions are written one by one)."""
        if self._loop_task is not None:
            self._stopping = True
            self._wake.set()
            await asyncio.gather(self._loop_task, return_exceptions=True)
            self._loop_task = None

    async def complete(self, completion: Completion) -> Task | None:
        """Record the solution (fenced by its lease); None when the lease was lost."""
        if self._loop_task is None:
            return (await self._tasks.complete_many([completion]))[0]
        future: asyncio.Future[Task | None] = asyncio.get_running_loop().create_future()
        self._queue.append((completion, future))
        self._wake.set()
        return await future

    async def _run(self) -> None:
        while True:
            while self._queue:
                await self._flush()
            if self._stopping:
                return
            await self._wake.wait()
            self._wake.clear()

    async def _flush(self) -> None:
        batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
        try:
            results = await self._tasks.complete_many([completion for completion, _ in batch])
        except Exception as exc:
            # Each caller sees the failure of its own completion, as without batching.
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), task in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(task)
