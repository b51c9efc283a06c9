"""Batch create: up to 100 tasks of any types in one request, one transaction, one answer per item.

Each item is admitted as a single create is (callback URL, offer, a solver able to take it) and
held in order in one transaction: an item the balance left after the items before it cannot pay
for gets ``insufficient_balance``, the others are created. An Idempotency-Key names the whole
batch: a retry with the same body gets the same items answered the same way, never a second
charge; the same key with another body is refused.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from cracker.domain.clock import new_id
from cracker.domain.errors import CrackerError, FieldError, InsufficientBalance, InvalidRequest
from cracker.domain.money import format_usd
from cracker.domain.tasks import Task
from cracker.service.tasks import IDEMPOTENCY_TTL_S, TaskService
from cracker.store import ConstraintViolation, NewTask, Store, batches

#: The most items one batch may hold.
MAX_BATCH_ITEMS = 100


@dataclass(frozen=True, slots=True)
class BatchItem:
    """An item that passed its type's request model."""

    task_type: str
    params: dict[str, Any]
    callback_url: str | None


@dataclass(frozen=True, slots=True)
class ItemError:
    """Why an item was not created: an error of the catalogue, as the single create answers it."""

    code: str
    message: str
    details: tuple[FieldError, ...] = ()

    @classmethod
    def of(cls, exc: CrackerError) -> ItemError:
        return cls(exc.code, exc.message, exc.details)


ItemResult = Task | ItemError


@dataclass(frozen=True, slots=True)
class BatchCreated:
    results: list[ItemResult]
    #: True when the Idempotency-Key named a batch answered earlier: that answer, not a new batch.
    replayed: bool = False


def batch_hash(raw_items: Sequence[Any]) -> str:
    """SHA-256 of the items as the client sent them (valid or not), keys sorted."""
    try:
        canonical = orjson.dumps(list(raw_items), option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:  # integers beyond 64 bits
        canonical = json.dumps(list(raw_items), sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(canonical).hexdigest()


def _render(entries: list[dict[str, Any] | None], news: Sequence[NewTask], created: Sequence[Task | None]) -> str:
    """The answer to remember: ``entries`` (errors found before the transaction, None for items
    sent to it) completed with the transaction's results, in order."""
    results = iter(zip(news, created, strict=True))
    out: list[dict[str, Any]] = []
    for entry in entries:
        if entry is not None:
            out.append(entry)
            continue
        new, task = next(results)
        out.append({"task_id": task.id} if task is not None else _error_entry(_short_of_balance(new)))
    return orjson.dumps(out).decode()


def _error_entry(error: ItemError) -> dict[str, Any]:
    return {"error": {
        "code": error.code, "message": error.message,
        "details": [{"field": d.field, "code": d.code, "message": d.message} for d in error.details],
    }}


class BatchService:
    def __init__(self, store: Store, tasks: TaskService) -> None:
        self._store = store
        self._tasks = tasks

    async def create(
        self, account_id: str, items: Sequence[BatchItem | CrackerError], request_hash: str,
        idempotency_key: str | None = None,
    ) -> BatchCreated:
        """``items``: in the client's order, each validated against its type's request model, or
        the error its validation raised. ``request_hash``: ``batch_hash`` of the raw items."""
        if idempotency_key is not None:
            replay = await self._replay(account_id, idempotency_key, request_hash)
            if replay is not None:
                return replay
        at = self._tasks.clock()
        results: list[ItemResult | None] = []
        news: list[NewTask] = []
        for item in items:
            if isinstance(item, CrackerError):
                results.append(ItemError.of(item))
                continue
            try:
                price, pool_only = await self._tasks.admit(item.task_type, item.params, item.callback_url)
            except CrackerError as exc:
                results.append(ItemError.of(exc))
                continue
            news.append(self._tasks.new_task(
                account_id, new_id(), item.task_type, item.params, price, pool_only, item.callback_url, at,
            ))
            results.append(None)  # filled in by the transaction
        entries = [None if r is None or isinstance(r, Task) else _error_entry(r) for r in results]
        key = None
        if idempotency_key is not None:
            key = batches.BatchKey(idempotency_key, request_hash, expired_before=at - IDEMPOTENCY_TTL_S)
        notifier = self._tasks.notifier
        for new in news:
            # Known live before their rows exist (see TaskService.create).
            notifier.created_here(new.task_id, account_id)
        try:
            created = await self._store.write(
                lambda tx: batches.create_batch(tx, account_id, news, key, lambda c: _render(entries, news, c), at)
            )
        except ConstraintViolation:
            for new in news:
                notifier.not_created(new.task_id)
            if idempotency_key is None:
                raise
            # The same key won a race in another request: answer as that request did.
            replay = await self._replay(account_id, idempotency_key, request_hash)
            if replay is None:
                raise
            return replay
        except BaseException:
            for new in news:
                notifier.not_created(new.task_id)
            raise
        done = iter(zip(news, created, strict=True))
        final: list[ItemResult] = []
        for result in results:
            if result is not None:
                final.append(result)
                continue
            new, task = next(done)
            if task is None:
                notifier.not_created(new.task_id)
                final.append(_short_of_balance(new))
            else:
                self._tasks.created(task)
                final.append(task)
        return BatchCreated(final)

    async def _replay(self, account_id: str, key: str, request_hash: str) -> BatchCreated | None:
        since = self._tasks.clock() - IDEMPOTENCY_TTL_S
        found = await self._store.read(lambda r: batches.find_batch_key(r, account_id, key, since))
        if found is None:
            return None
        if found.request_hash != request_hash:
            raise InvalidRequest(
                "This Idempotency-Key was used in the last 24 h with another batch; use a new key"
            )
        results: list[ItemResult] = []
        for entry in orjson.loads(found.outcome):
            if "task_id" in entry:
                task_id = entry["task_id"]
                task = await self._store.get_task(task_id)
                results.append(task if task is not None else ItemError(
                    "not_found", f"Task {task_id} of this batch was deleted by retention"
                ))
                continue
            error = entry["error"]
            details = tuple(FieldError(d["field"], d["code"], d["message"]) for d in error.get("details", ()))
            results.append(ItemError(error["code"], error["message"], details))
        return BatchCreated(results, replayed=True)


def _short_of_balance(new: NewTask) -> ItemError:
    return ItemError(
        InsufficientBalance.code,
        f"This {new.type} task costs {format_usd(new.price)} USD, more than the balance left after the "
        "items before it",
    )
