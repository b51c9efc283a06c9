"""Use cases of the price list."""

from __future__ import annotations

from dataclasses import dataclass

from cracker.domain.clock import now
from cracker.domain.task_types import TASK_TYPES
from cracker.store.sql import Store


@dataclass(frozen=True, slots=True)
class Offer:
    type: str
    price: int
    enabled: bool


class OfferService:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def list(self, *, enabled_only: bool = True) -> list[Offer]:
        rows = await self._store.read(lambda r: r.list_offers(enabled_only=enabled_only))
        return [Offer(t, p, e) for t, p, e in rows if t in TASK_TYPES]

    async def set(self, task_type: str, price: int, *, enabled: bool = True) -> Offer:
        if task_type not in TASK_TYPES:
            raise ValueError(f"unknown task type {task_type!r}; known: {', '.join(TASK_TYPES)}")
        at = now()
        await self._store.write(lambda tx: tx.upsert_offer(task_type, price, enabled, at))
        return Offer(task_type, price, enabled)
