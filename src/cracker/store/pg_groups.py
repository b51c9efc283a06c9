"""Creates on PostgreSQL grouped per event-loop turn: the creates (without an idempotency key) that
reach an API process's store in the same turn run as one statement, one round trip and one commit
for all of them.

Under load an API process parses many requests per turn of its event loop (one read from each
ready connection); alone, each create costs a round trip, a wake-up of a server process and a
commit that waits for the WAL flush. The first item of a turn schedules its group for the next turn
(``call_soon``: no timer, no added wait; a lone item waits only for the rest of its turn), later
ones in the same turn join it. Groups do not wait for one another: each runs on its own pooled
connection.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

from cracker.domain.errors import ServiceUnavailable
from cracker.store.interface import NewTask
from cracker.store.rows import dumps

#: At most this many items per statement (a turn rarely brings more; arrays stay small).
GROUP_MAX = 100

Item = TypeVar("Item")
Result = TypeVar("Result")


class TurnGroups(ABC, Generic[Item, Result]):
    """Items submitted in one loop turn, run in the next by ``_run_group``, which settles each future."""

    def __init__(self) -> None:
        self._queued: list[tuple[Item, asyncio.Future[Result]]] = []
        self._scheduled = False
        self._running: set[asyncio.Task[None]] = set()

    async def submit(self, item: Item) -> Result:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Result] = loop.create_future()
        self._queued.append((item, future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._start_groups)
        return await future

    def _start_groups(self) -> None:
        self._scheduled = False
        queued, self._queued = self._queued, []
        for start in range(0, len(queued), GROUP_MAX):
            runner = asyncio.ensure_future(self._run_group(queued[start:start + GROUP_MAX]))
            self._running.add(runner)  # held: the loop keeps only weak references to tasks
            runner.add_done_callback(self._running.discard)

    @abstractmethod
    async def _run_group(self, group: list[tuple[Item, asyncio.Future[Result]]]) -> None: ...


def settle(future: asyncio.Future[Result], result: Result | None = None, exc: BaseException | None = None) -> None:
    if future.done():  # its request was cancelled (the client left); what was done stands regardless
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)  # type: ignore[arg-type]  # None only where Result admits it


#: Runs one create alone (``pg_sql.CREATE``): whether it was created.
CreateOne = Callable[[NewTask], Awaitable[bool]]
#: Runs ``pg_sql.CREATE_GROUP`` with these arguments: the ids created.
CreateGroup = Callable[[list[Any]], Awaitable[set[str]]]


def create_group_args(group: Sequence[NewTask]) -> list[Any]:
    """``pg_sql.CREATE_GROUP``'s arguments: one array per column."""
    return [
        [n.task_id for n in group], [n.account_id for n in group], [n.price for n in group],
        [n.created_at for n in group], [n.type for n in group], [dumps(n.params) for n in group],
        [n.deadline_at for n in group], [n.callback_url for n in group], [n.pool_only for n in group],
    ]


class CreateGroups(TurnGroups[NewTask, bool]):
    """Each create keeps its own outcome: an account that cannot pay for all of its tasks in a group
    has them created one by one instead, in arrival order (``pg_sql.CREATE_GROUP``), and a group
    whose statement fails for any reason but an unreachable server is retried one create at a
    time, so one request's failure is never another's."""

    def __init__(self, create_one: CreateOne, create_group: CreateGroup) -> None:
        super().__init__()
        self._create_one = create_one
        self._create_group = create_group

    async def _run_group(self, group: list[tuple[NewTask, asyncio.Future[bool]]]) -> None:
        if len(group) == 1:
            await self._one_by_one(group)
            return
        try:
            created = await self._create_group(create_group_args([new for new, _ in group]))
        except ServiceUnavailable as exc:
            for _, future in group:
                settle(future, exc=exc)
            return
        except Exception:
            # Whatever the statement tripped on (it was rolled back whole), each create alone
            # meets only its own fate.
            await self._one_by_one(group)
            return
        left = []
        for new, future in group:
            if new.task_id in created:
                settle(future, True)
            else:
                left.append((new, future))
        await self._one_by_one(left)

    async def _one_by_one(self, group: list[tuple[NewTask, asyncio.Future[bool]]]) -> None:
        for new, future in group:
            try:
                created = await self._create_one(new)
            except Exception as exc:
                settle(future, exc=exc)
            else:
                settle(future, created)
