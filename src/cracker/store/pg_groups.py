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
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from cracker.domain.errors import ServiceUnavailable
from cracker.store.interface import NewTask
from cracker.store.rows import dumps

#: At most this many creates per statement (a turn rarely brings more; arrays stay small).
GROUP_MAX = 100

#: Runs one create alone (``pg_sql.CREATE``): whether it was created.
CreateOne = Callable[[NewTask], Awaitable[bool]]
#: Runs ``pg_sql.CREATE_GROUP[skip_locked]`` with these arguments: the ids created.
CreateGroup = Callable[[list[Any], bool], Awaitable[set[str]]]
_Queued = tuple[NewTask, "asyncio.Future[bool]"]


def create_args(new: NewTask) -> list[Any]:
    """``pg_sql.CREATE``'s arguments."""
    return [new.task_id, new.account_id, new.price, new.created_at, new.type, dumps(new.params), new.deadline_at,
            new.callback_url, new.pool_only]


def create_group_args(group: Sequence[NewTask]) -> list[Any]:
    """``pg_sql.CREATE_GROUP``'s arguments: ``pg_sql.CREATE``'s, one array per column."""
    return [list(column) for column in zip(*(create_args(new) for new in group), strict=True)]


def _resolve(future: asyncio.Future[bool], created: bool) -> None:
    if not future.done():  # done: its request was cancelled; what was written stands regardless
        future.set_result(created)


def _fail(future: asyncio.Future[bool], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


class CreateGroups:
    """Creates submitted in one loop turn, run in the next; each keeps its own outcome, and no
    account's creates wait for another account's row.

    The first pass skips the accounts whose row is locked (by their own earlier creates or
    completions) and those that cannot pay for all of their tasks in the group; each such
    account's tasks then run as a group of that account alone, which waits for its own row, and
    if the account cannot pay for them all, one by one in arrival order, which takes as many as
    its balance allows. A group whose statement fails for any reason but an unreachable server
    (it was rolled back whole) is retried per account, then one create at a time, so one
    request's failure is never another's."""

    def __init__(self, create_one: CreateOne, create_group: CreateGroup) -> None:
        self._create_one = create_one
        self._create_group = create_group
        self._queued: list[_Queued] = []
        self._scheduled = False
        self._running: set[asyncio.Task[None]] = set()

    async def submit(self, new: NewTask) -> bool:
        """Whether the task was created (False: its account could not pay for it)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bool] = loop.create_future()
        self._queued.append((new, future))
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

    async def _run_group(self, group: list[_Queued]) -> None:
        if len(group) == 1:
            await self._one_by_one(group)
            return
        by_account: dict[str, list[_Queued]] = {}
        for queued in await self._grouped(group, skip_locked=True):
            by_account.setdefault(queued[0].account_id, []).append(queued)
        await asyncio.gather(*(self._account_alone(queued) for queued in by_account.values()))

    async def _account_alone(self, group: list[_Queued]) -> None:
        if len(group) > 1:
            group = await self._grouped(group, skip_locked=False)
        await self._one_by_one(group)

    async def _grouped(self, group: list[_Queued], *, skip_locked: bool) -> list[_Queued]:
        """Run the group statement and settle what it created: the creates it left."""
        try:
            created = await self._create_group(create_group_args([new for new, _ in group]), skip_locked)
        except ServiceUnavailable as exc:
            for _, future in group:
                _fail(future, exc)
            return []
        except Exception:
            return group
        left = []
        for new, future in group:
            if new.task_id in created:
                _resolve(future, True)
            else:
                left.append((new, future))
        return left

    async def _one_by_one(self, group: list[_Queued]) -> None:
        for new, future in group:
            try:
                created = await self._create_one(new)
            except Exception as exc:
                _fail(future, exc)
            else:
                _resolve(future, created)
