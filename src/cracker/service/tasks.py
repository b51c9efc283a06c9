"""Use cases of the task lifecycle: create (hold), read, lease, complete (capture), reject (release)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from cracker.domain.callbacks import CallbackPolicy
from cracker.domain.catalogue import spec_for
from cracker.domain.clock import Clock, new_id, now
from cracker.domain.errors import (
    FieldError,
    InsufficientBalance,
    InvalidRequest,
    NoSolverAvailable,
    NotFound,
    OfferNotFound,
    ValidationFailed,
)
from cracker.domain.money import format_usd
from cracker.domain.ocr_models import GENERAL_MODEL
from cracker.domain.tasks import ClaimedTask, Task, TaskStatus, TaskView
from cracker.domain.workers import Completion
from cracker.metrics import Metrics
from cracker.service.events import Notifier
from cracker.service.offers import OfferService
from cracker.store import (
    IdempotencyKey,
    IdempotencyKeyTaken,
    NewTask,
    Rejection,
    Store,
    batches,
    idempotency,
    retention,
    task_numbers,
)

#: How long an Idempotency-Key names its task.
IDEMPOTENCY_TTL_S = 24 * 3600


def _rejection(code: str, message: str | None) -> Rejection:
    spec = spec_for(code)
    return Rejection(code=code, message=message or spec.message, charged=spec.charged)


def _request_hash(task_type: str, params: dict[str, Any], callback_url: str | None) -> str:
    request = {"type": task_type, "params": params, "callback_url": callback_url}
    try:
        canonical = orjson.dumps(request, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:  # integers beyond 64 bits
        canonical = json.dumps(request, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(canonical).hexdigest()


@dataclass(frozen=True, slots=True)
class Created:
    task: Task
    #: True when an Idempotency-Key named a task created earlier: that task, not a new one.
    replayed: bool = False


class SolverCapacity(Protocol):
    """What the service asks of the solving side at creation: can anything take this task?"""

    def can_serve(self, task_type: str, params: Mapping[str, Any]) -> bool: ...

    def pool_only(self, task_type: str, params: Mapping[str, Any]) -> bool:
        """True when no built-in solver accepts the task: only an attached pool may lease it."""
        ...


class ModelNames(Protocol):
    """The named OCR models a task may ask for (``OcrModelService``)."""

    async def exists(self, name: str) -> bool: ...


class TaskService:
    def __init__(
        self,
        store: Store,
        offers: OfferService,
        capacity: SolverCapacity,
        notifier: Notifier,
        metrics: Metrics,
        *,
        task_timeout_s: float,
        callbacks: CallbackPolicy | None = None,
        max_running_per_account: int = 0,
        models: ModelNames | None = None,
        clock: Clock = now,
    ) -> None:
        self._models = models
        #: Every time this service stores (creation, deadlines, leases, ends); ``now`` in production.
        self.clock = clock
        self._max_running_per_account = max_running_per_account
        self._callbacks = callbacks or CallbackPolicy()
        self._offers = offers
        self._store = store
        self._capacity = capacity
        self._notifier = notifier
        self._metrics = metrics
        self._task_timeout_s = task_timeout_s

    @property
    def notifier(self) -> Notifier:
        return self._notifier

    async def create(
        self,
        account_id: str,
        task_type: str,
        params: dict[str, Any],
        *,
        callback_url: str | None = None,
        idempotency_key: str | None = None,
    ) -> Created:
        """Hold the offer's price and queue the task, in one transaction.

        ``params`` are already validated against the type's request model. With an
        ``idempotency_key`` seen in the last 24 h the original task comes back (never a second
        charge); the same key with another request is refused.
        """
        # Only a keyed create is ever compared with another request.
        request_hash = "" if idempotency_key is None else _request_hash(task_type, params, callback_url)
        if idempotency_key is not None:
            replay = await self._replay(account_id, idempotency_key, request_hash)
            if replay is not None:
                return replay
        price, pool_only = await self.admit(task_type, params, callback_url)
        task_id = new_id()
        # Known live from before its row exists: an end heard of (from a worker elsewhere) before
        # this coroutine resumes after the insert must find it here to clear it.
        self._notifier.created_here(task_id, account_id)
        try:
            created = await self._insert(
                account_id, task_id, task_type, params, price, pool_only, callback_url, idempotency_key, request_hash,
            )
        except BaseException:
            self._notifier.not_created(task_id)
            raise
        if created.replayed:
            self._notifier.not_created(task_id)  # the key named an earlier task
        return created

    async def admit(
        self, task_type: str, params: Mapping[str, Any], callback_url: str | None
    ) -> tuple[int, bool]:
        """(price, pool only) of a task that may be created, checked before any money moves: the
        callback URL allowed, the type sold, and something able to solve it (a task nothing can
        solve must not sit in the queue). Raises the error the client gets otherwise."""
        problem = None if callback_url is None else self._callbacks.url_problem(callback_url)
        if problem is not None:
            raise ValidationFailed([FieldError("callback_url", "callback_url_forbidden", problem)])
        await self._check_model(params)
        price = await self._offers.price(task_type)
        if price is None:
            raise OfferNotFound(f"No offer for task type {task_type!r}; GET /v2/offers lists what is sold")
        if not self._capacity.can_serve(task_type, params):
            raise NoSolverAvailable(
                f"No built-in solver accepts this {task_type} task and no worker pool serving "
                f"{task_type} is attached"
            )
        return price, self._capacity.pool_only(task_type, params)

    def new_task(
        self, account_id: str, task_id: str, task_type: str, params: dict[str, Any], price: int, pool_only: bool,
        callback_url: str | None, at: float, key: IdempotencyKey | None = None,
    ) -> NewTask:
        return NewTask(
            task_id=task_id, account_id=account_id, type=task_type, params=params, price=price, created_at=at,
            deadline_at=at + self._task_timeout_s, callback_url=callback_url, pool_only=pool_only, idempotency=key,
        )

    def created(self, task: Task) -> None:
        """Count a task just committed, and wake the workers."""
        self._metrics.created_of(task.type).inc()
        self._notifier.task_created()

    async def _insert(
        self, account_id: str, task_id: str, task_type: str, params: dict[str, Any], price: int, pool_only: bool,
        callback_url: str | None, idempotency_key: str | None, request_hash: str,
    ) -> Created:
        at = self.clock()
        key = None
        if idempotency_key is not None:
            key = IdempotencyKey(idempotency_key, request_hash, expired_before=at - IDEMPOTENCY_TTL_S)
        new = self.new_task(account_id, task_id, task_type, params, price, pool_only, callback_url, at, key)
        try:
            task = await self._store.create_task(new)
        except IdempotencyKeyTaken:
            # The same key won a race in another request: answer as that request did.
            replay = await self._replay(account_id, idempotency_key or "", request_hash)
            if replay is None:
                raise
            return replay
        return self._created(task, task_type, price)

    def _created(self, task: Task | None, task_type: str, price: int) -> Created:
        if task is None:
            raise InsufficientBalance(
                f"This {task_type} task costs {format_usd(price)} USD, more than the available balance"
            )
        self.created(task)
        return Created(task)

    async def _check_model(self, params: Mapping[str, Any]) -> None:
        """An image-to-text task may name a registered OCR model; any other name is refused here,
        before money moves (the type's schema checked its form, only the registry knows it exists)."""
        name = params.get("model")
        if not isinstance(name, str) or name == GENERAL_MODEL:
            return
        if self._models is None or not await self._models.exists(name):
            raise ValidationFailed([FieldError(
                "model", "unknown_model", f"There is no OCR model named {name!r}; GET /v2/offers lists the models"
            )])

    async def _replay(self, account_id: str, key: str, request_hash: str) -> Created | None:
        since = self.clock() - IDEMPOTENCY_TTL_S
        found = await self._store.find_idempotency_key(account_id, key, since)
        if found is None:
            return None
        stored_hash, task_id = found
        if stored_hash != request_hash:
            raise InvalidRequest(
                "This Idempotency-Key was used in the last 24 h with another request; use a new key"
            )
        task = await self._store.get_task(task_id)
        if task is None:  # the task aged out of retention: the key is stale
            return None
        return Created(task, replayed=True)

    async def wait(self, account_id: str, task_id: str, wait_s: float) -> TaskView:
        """The task once terminal, or as it is after ``wait_s`` seconds (long-poll)."""
        deadline = time.monotonic() + wait_s
        # Watch before reading: an end that lands between the read and the wait still wakes us.
        ended = self._notifier.watch(task_id)
        # A task this process created and has not seen end is live: skip the first read.
        known_live = wait_s > 0 and self._notifier.known_unfinished(task_id, account_id)
        try:
            while True:
                if known_live:
                    known_live = False
                    remaining = deadline - time.monotonic()
                else:
                    view = await self.get(account_id, task_id)
                    remaining = deadline - time.monotonic()
                    if view.status.terminal or remaining <= 0:
                        return view
                # The notification is the fast path; the bounded wait covers one that was lost.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(ended.wait(), min(remaining, 1.0))
                ended.clear()
        finally:
            self._notifier.unwatch(task_id, ended)

    async def cancel(self, account_id: str, task_id: str) -> TaskView:
        """End a live task ``rejected`` with ``cancelled`` (hold released); a terminal one is left as is."""
        view = await self.get(account_id, task_id)
        if not view.status.terminal:
            await self.reject(task_id, "cancelled", "Cancelled by the client")
            view = await self.get(account_id, task_id)
        return view

    async def number_of(self, task_id: str) -> int:
        """The task's number (the integer id the captcha-vendor protocols hand out)."""
        number = await self._store.read(lambda r: task_numbers.number_of(r, task_id))
        if number is None:
            raise NotFound(f"No task {task_id}")
        return number

    async def id_of_number(self, account_id: str, number: int) -> str:
        """The id of the account's task of that number; ``not_found`` for any other number."""
        # Beyond a BIGINT the database would refuse the bind: no task has such a number.
        task_id = None if not 0 < number < 2**63 else await self._store.read(
            lambda r: task_numbers.id_of(r, account_id, number)
        )
        if task_id is None:
            raise NotFound(f"No task {number}")
        return task_id

    async def get(self, account_id: str, task_id: str) -> TaskView:
        task = await self._store.get_task_view(task_id)
        # Another account's task is exactly as unknown as a missing one.
        if task is None or task.account_id != account_id:
            raise NotFound(f"No task {task_id}")
        return task

    async def claim(
        self, types: Sequence[str], owner: str, limit: int, lease_s: float, *, builtin_only: bool = False,
        accounts: Sequence[str] | None = None, lane_slots: int | None = None,
    ) -> list[ClaimedTask]:
        """``lane_slots``: the claiming worker's slot count. With a cap set, one account may hold all
        but one of them, whatever the cap: a slot stays free for every other account's next task,
        so a flood waits behind nobody's deadline (the fairness goal of the in-process worker)."""
        cap = self._max_running_per_account
        if cap and lane_slots is not None and lane_slots > 1:
            cap = min(cap, lane_slots - 1)
        return await self._store.claim_tasks(
            types, owner, limit, lease_s, self.clock(), builtin_only=builtin_only, accounts=accounts,
            max_running_per_account=cap,
        )

    async def complete_many(self, items: Sequence[Completion]) -> list[Task | None]:
        """``complete`` for a batch, in one transaction (group commit): one answer per item, None
        where the lease was lost."""
        completed = await self._store.complete_tasks(items, self.clock())
        for task in completed:
            self._finished(task)
        done = {(task.id, task.attempts): task for task in completed}
        return [done.get((c.task_id, c.attempt)) for c in items]

    async def reject(
        self, task_id: str, code: str, message: str | None = None, *, claim: ClaimedTask | None = None
    ) -> Task | None:
        """End a live task ``rejected``; the hold is released unless the error is ``charged``."""
        fence = (claim.lease_owner, claim.attempt) if claim is not None else None
        task = await self._store.reject_task(task_id, _rejection(code, message), self.clock(), fence=fence)
        if task is not None:
            self._finished(task)
        return task

    async def reject_overdue(self, limit: int = 500) -> int:
        """Reject every live task past its deadline with ``solve_timeout``, in one transaction."""
        rejection = _rejection("solve_timeout", "The task was not solved before its deadline")
        finished = await self._store.reject_overdue(rejection, self.clock(), limit)
        for task in finished:
            self._finished(task)
        return len(finished)

    async def purge_finished(self, retention_s: float, batch: int = 1000) -> int:
        """Delete tasks that ended more than ``retention_s`` ago, in batches; 0 keeps everything."""
        if retention_s <= 0:
            return 0
        before = self.clock() - retention_s
        deleted = 0
        while True:
            count = await self._store.write(lambda tx: retention.delete_finished(tx, before, batch))
            deleted += count
            if count < batch:
                return deleted

    async def purge_idempotency_keys(self) -> int:
        before = self.clock() - IDEMPOTENCY_TTL_S
        singles = await self._store.write(lambda tx: idempotency.purge_keys(tx, before))
        return singles + await self._store.write(lambda tx: batches.purge_batch_keys(tx, before))

    async def queue_depths(self) -> dict[tuple[str, str], int]:
        return await self._store.read(lambda r: r.queue_depths())

    def _finished(self, task: Task) -> None:
        if task.status is TaskStatus.COMPLETED:
            self._metrics.completed_of(task.type).inc()
        else:
            self._metrics.rejected.labels(task.type, task.error_code or "general_error").inc()
        if task.completed_at is not None:
            self._metrics.solve_seconds_of(task.type).observe(max(0.0, task.completed_at - task.created_at))
        self._notifier.task_finished(task.id)
