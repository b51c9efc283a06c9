"""Use cases of the named OCR models: register, list, remove, and what every process serves.

Every process (API and worker, on any machine) learns of a model added or removed by another
within ``REFRESH_S``: the list of names and versions is read again when it is older than that
(one small query, no weights), the way offer prices are. A worker reads a model's weights once,
when the first task naming it (or a new version of it) arrives.
"""

from __future__ import annotations

import asyncio
import time

from cracker.domain.clock import now
from cracker.domain.errors import NotFound
from cracker.domain.ocr_models import GENERAL_MODEL, OcrModelRecord, OcrModelSummary, name_problem
from cracker.store import Store
from cracker.store import ocr_models as sql

#: How stale a process's list of models may be: a model added or removed elsewhere is served, or
#: refused, within this long.
REFRESH_S = 2.0


class ModelNameTaken(ValueError):
    """A model of that name is registered already."""


class OcrModelService:
    def __init__(self, store: Store, *, refresh_s: float = REFRESH_S) -> None:
        self._store = store
        self._refresh_s = refresh_s
        self._summaries: dict[str, OcrModelSummary] = {}
        self._read_at = -float("inf")
        self._lock = asyncio.Lock()
        #: Weights read so far, by name (dropped when the name's version changes or it is removed).
        self._records: dict[str, OcrModelRecord] = {}

    async def reported_samples(self, model: str, limit: int) -> list[tuple[bytes, str]]:
        """Labelled images of ``model`` from clients' reports (docs/reports.md), newest first: the
        images it read wrong with the text the client said they show, and those it read right."""
        return [(label.image, label.text) for label in await self._store.reported_labels(model, limit)]

    async def summaries(self, *, fresh: bool = False) -> dict[str, OcrModelSummary]:
        """The registered models by name, read again when older than ``REFRESH_S`` (or ``fresh``)."""
        if fresh or time.monotonic() - self._read_at >= self._refresh_s:
            async with self._lock:
                if fresh or time.monotonic() - self._read_at >= self._refresh_s:
                    listed = await self._store.read(sql.list_models)
                    self._summaries = {summary.name: summary for summary in listed}
                    self._read_at = time.monotonic()
                    for name in [n for n, r in self._records.items() if self._summaries.get(n) != r.summary]:
                        del self._records[name]
        return self._summaries

    async def exists(self, name: str) -> bool:
        """Whether a task may name ``name``. A name this process has not heard of yet is looked up
        afresh, so a model added a moment ago elsewhere is never refused."""
        if name == GENERAL_MODEL:
            return True
        if name in await self.summaries():
            return True
        return name in await self.summaries(fresh=True)

    async def record(self, name: str) -> OcrModelRecord | None:
        """The model's weights as this process should serve them now; None when it is not registered."""
        summary = (await self.summaries()).get(name)
        if summary is None:
            summary = (await self.summaries(fresh=True)).get(name)
            if summary is None:
                return None
        cached = self._records.get(name)
        if cached is not None and cached.summary == summary:
            return cached
        loaded = await self._store.read(lambda r: sql.get_model(r, name))
        if loaded is None:
            return None
        self._records[name] = loaded
        return loaded

    async def stored(self, name: str) -> OcrModelRecord | None:
        """A registered model with its weights, read from the database (to fine-tune from it)."""
        return await self._store.read(lambda r: sql.get_model(r, name))

    async def add(self, record: OcrModelRecord) -> OcrModelRecord:
        problem = name_problem(record.summary.name)
        if problem is not None:
            raise ValueError(problem)
        if not await self._store.write(lambda tx: sql.add_model(tx, record)):
            raise ModelNameTaken(f"a model named {record.summary.name!r} exists; remove it first")
        self._read_at = -float("inf")
        return record

    async def remove(self, name: str) -> None:
        if not await self._store.write(lambda tx: sql.remove_model(tx, name)):
            raise NotFound(f"No OCR model named {name!r}")
        self._read_at = -float("inf")

    async def list(self) -> list[OcrModelSummary]:
        return list((await self.summaries(fresh=True)).values())


def new_summary(name: str, *, base: str, score: float, base_score: float, held_out: int, trained_on: int,
                size: int) -> OcrModelSummary:
    return OcrModelSummary(name=name, score=score, base_score=base_score, held_out=held_out, trained_on=trained_on,
                           size=size, created_at=now(), base=base)
