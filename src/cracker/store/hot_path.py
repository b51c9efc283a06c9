"""The four operations every task goes through, as one statement each: create, claim, complete, poll.

A store whose round trips are expensive (PostgreSQL: every statement is a send, a server wake-up
and a wait, and SQLAlchemy's async adaptation adds ~150 us of Python to each) offers this; the
service then uses it instead of composing the same work from ``Writer`` calls in a unit of work.
On SQLite statements are in-process calls and the store offers none: the units of work are as fast.

Every implementation must do exactly what the service's units of work do (the store test suite
runs the same assertions over both paths): a create holds the price, writes the ledger row and
the task, all or nothing; a completion is fenced by its lease and captures the hold, with its
ledger row and its webhook outbox row, in the same transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from cracker.domain.tasks import ClaimedTask, Task, TaskView
from cracker.domain.workers import Completion


@dataclass(frozen=True, slots=True)
class NewTask:
    task_id: str
    account_id: str
    type: str
    params: dict[str, Any]
    price: int
    created_at: float
    deadline_at: float
    callback_url: str | None
    pool_only: bool
    #: (key, request hash) of the client's Idempotency-Key, remembered with the task.
    idempotency: tuple[str, str] | None = None


class HotPath(Protocol):
    async def create_task(self, new: NewTask) -> Task | None:
        """Hold, ledger row, task (and idempotency key) at once; None when the balance is short.

        Raises the store's ``IntegrityError`` when the idempotency key is already taken (by a live
        key, or an expired one not yet purged: the caller resolves which).
        """
        ...

    async def claim_tasks(
        self, types: Sequence[str], owner: str, limit: int, lease_s: float, now: float, *, builtin_only: bool
    ) -> list[ClaimedTask]: ...

    async def complete_tasks(self, items: Sequence[Completion], now: float) -> list[Task]:
        """Complete, capture and enqueue webhooks for every item whose lease still holds; the
        tasks that were completed (items whose lease was lost are left out)."""
        ...

    async def get_task_view(self, task_id: str) -> TaskView | None: ...

    async def close(self) -> None: ...
