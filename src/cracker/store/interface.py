"""The store's contract: what the services may ask of storage, whichever database is below.

Two implementations keep their own fast statements behind it: ``SqliteStore`` runs units of work
on one writer thread (statements are in-process calls, so composing them costs microseconds);
``PostgresStore`` runs each per-task operation as one statement, one round trip. The contract
suite (``tests/integration/store/contract``) runs the same assertions against both.

The per-task operations are methods, each one transaction, each with the whole business rule
inside: a create holds the price, writes the ledger row, the task and the idempotency key, all or
nothing; every end of a task (completion, rejection, timeout) settles its hold, capture or
release, with its ledger row and, where the task has a callback, its webhook outbox row. The cold
operations (accounts, offers, the worker registry, webhooks, retention) are units of work: a
function over a ``Reader`` or ``Writer``, run as one transaction by ``read`` or ``write``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from cracker.domain.reports import ReportedLabel
from cracker.domain.tasks import ClaimedTask, Task, TaskView
from cracker.domain.workers import Completion
from cracker.store import idempotency, reports
from cracker.store.units import Reader, Writer

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class IdempotencyKey:
    """A client's Idempotency-Key, remembered with the task it created."""

    key: str
    request_hash: str
    #: A key of the account remembered before this instant has expired: a create may take it over.
    expired_before: float


@dataclass(frozen=True, slots=True)
class NewTask:
    task_id: str
    account_id: str
    type: str
    params: dict[str, Any]
    price: int
    created_at: float
    deadline_at: float
    callback_url: str | None = None
    #: No built-in solver accepts it: only an attached pool may lease it.
    pool_only: bool = False
    idempotency: IdempotencyKey | None = None


@dataclass(frozen=True, slots=True)
class Rejection:
    """How a live task ends when it is not solved."""

    code: str
    message: str
    #: Keep the held price (an error marked ``charged`` in the catalogue) instead of releasing it.
    charged: bool


class Store(ABC):
    """Storage of one database. Every method is one transaction."""

    dialect: str

    # --- the per-task operations --------------------------------------------------------------

    @abstractmethod
    async def create_task(self, new: NewTask) -> Task | None:
        """Hold the price, write its ledger row, the task and its idempotency key, all or nothing.

        None when the available balance is short of the price (nothing written). Raises
        ``IdempotencyKeyTaken`` when a live key of the account has that name (an expired one is
        taken over).
        """

    @abstractmethod
    async def claim_tasks(
        self, types: Sequence[str], owner: str, limit: int, lease_s: float, now: float, *, builtin_only: bool = False,
        accounts: Sequence[str] | None = None, max_running_per_account: int = 0,
    ) -> list[ClaimedTask]:
        """Lease up to ``limit`` pending tasks of ``types`` to ``owner``, round robin between accounts.

        Each account's tasks go oldest first; between accounts, the next task is the one of the
        account with the fewest tasks running (counting what this claim took), the oldest among
        equals: a claim takes one task of every account with none in flight before a second of
        any, and a claim of one serves an idle account ahead of a backlog, so one account's
        backlog never delays another's next task.

        ``max_running_per_account`` (0: no cap): an account that has that many tasks of ``types``
        ``running`` gets none, and one below it at most the room left (counted per claimed types,
        so per lane: the OCR lane's share is its own). Exact on SQLite (one writer); on PostgreSQL
        claims that overlap in time each read the running count before the others' picks commit,
        so an account may reach, at worst, the cap times the number of overlapping claims.

        Concurrent claimers never share a task. ``builtin_only``: skip tasks only an attached pool
        may lease (``pool_only``). ``accounts``: only tasks of these accounts (a pool an operator
        limited); None: any account's.
        """

    @abstractmethod
    async def complete_tasks(self, items: Sequence[Completion], now: float) -> list[Task]:
        """Complete every item whose lease still holds (its owner and attempt match a running
        task), capturing its hold; the completed tasks, the others left out (their result dropped)."""

    @abstractmethod
    async def reject_task(
        self, task_id: str, rejection: Rejection, now: float, *, fence: tuple[str, int] | None = None
    ) -> Task | None:
        """End a live task ``rejected``: its hold captured if the error is charged, else released.

        ``fence`` (lease owner, attempt): only while that lease holds. None when the task was not
        live (or the fence failed): nothing changed.
        """

    @abstractmethod
    async def reject_overdue(self, rejection: Rejection, now: float, limit: int) -> list[Task]:
        """``reject_task`` for up to ``limit`` live tasks whose deadline passed; the tasks ended."""

    @abstractmethod
    async def get_task_view(self, task_id: str) -> TaskView | None:
        """The client's view of a task: what every poll reads."""

    # --- reads built on units of work (the same on both databases) ----------------------------

    async def get_task(self, task_id: str) -> Task | None:
        return await self.read(lambda r: r.get_task(task_id))

    async def get_offer_price(self, task_type: str) -> int | None:
        return await self.read(lambda r: r.get_offer_price(task_type))

    async def find_idempotency_key(self, account_id: str, key: str, since: float) -> tuple[str, str] | None:
        """(request hash, task id) of the account's key remembered at or after ``since``."""
        return await self.read(lambda r: idempotency.find_key(r, account_id, key, since))

    async def reported_labels(self, model: str, limit: int, *, account_id: str | None = None) -> list[ReportedLabel]:
        """Labelled images of ``model`` from reports, newest first: (image bytes, the text it shows)
        of incorrect reports that sent the expected text, and of correct reports (the answer)."""
        return await self.read(lambda r: reports.reported_labels(r, model, limit, account_id))

    # --- units of work ------------------------------------------------------------------------

    @abstractmethod
    async def read(self, work: Callable[[Reader], T]) -> T:
        """Run ``work``, synchronous database code and nothing else, over a snapshot."""

    @abstractmethod
    async def write(self, work: Callable[[Writer], T]) -> T:
        """One transaction: committed when ``work`` returns, rolled back if it raises.

        A broken constraint raises ``ConstraintViolation``.
        """

    @abstractmethod
    async def close(self) -> None: ...
