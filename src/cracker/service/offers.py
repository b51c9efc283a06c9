"""Use cases of the price list."""

from __future__ import annotations

import time
from dataclasses import dataclass

from cracker.domain.clock import now
from cracker.domain.task_types import TASK_TYPES
from cracker.store import Store

#: How long a process trusts an offer's price without reading it again.
PRICE_CACHE_S = 1.0


@dataclass(frozen=True, slots=True)
class Offer:
    type: str
    price: int
    enabled: bool


class OfferService:
    def __init__(self, store: Store) -> None:
        self._store = store
        # type -> (price or None when not sold, monotonic expiry)
        self._prices: dict[str, tuple[int | None, float]] = {}

    async def price(self, task_type: str) -> int | None:
        """The type's price, None when it is not sold; read at most once a second per process:
        every create needs it, and a price change may take a second to reach every API process."""
        cached = self._prices.get(task_type)
        at = time.monotonic()
        if cached is not None and cached[1] > at:
            return cached[0]
        price = await self._store.get_offer_price(task_type)
        self._prices[task_type] = (price, at + PRICE_CACHE_S)
        return price

    async def list(self, *, enabled_only: bool = True) -> list[Offer]:
        rows = await self._store.read(lambda r: r.list_offers(enabled_only=enabled_only))
        return [Offer(t, p, e) for t, p, e in rows if t in TASK_TYPES]

    async def set(self, task_type: str, price: int, *, enabled: bool = True) -> Offer:
        if task_type not in TASK_TYPES:
            raise ValueError(f"unknown task type {task_type!r}; known: {', '.join(TASK_TYPES)}")
        at = now()
        await self._store.write(lambda tx: tx.upsert_offer(task_type, price, enabled, at))
        self._prices.pop(task_type, None)  # this process sees its own change at once
        return Offer(task_type, price, enabled)
