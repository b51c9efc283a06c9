"""What every proof-of-work solver shares: parsing the job, the solver skeleton, chunk sizes."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, ClassVar, Final, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from cracker.domain.errors import TaskRejected
from cracker.solvers.base import Solution, SolveJob
from cracker.solvers.pow.engine import Hit, PowEngine

ModelT = TypeVar("ModelT", bound=BaseModel)

# Attempts per chunk, sized for roughly 0.05 to 0.2 s of one core: long enough that the IPC of a
# chunk (well under a millisecond) is noise, short enough that the pool rebalances between tasks.
NATIVE_SHA_CHUNK: Final = 1 << 21
PYTHON_SHA_CHUNK: Final = 1 << 17


def sha_chunk(engine: PowEngine) -> int:
    """Chunk size of a decimal-nonce SHA search on this engine."""
    return NATIVE_SHA_CHUNK if engine.native else PYTHON_SHA_CHUNK


def compact_json(value: Any) -> str:
    """JSON as browsers' ``JSON.stringify`` writes it (no spaces)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def elapsed_ms(since: float) -> int:
    return max(0, round((time.monotonic() - since) * 1000))


class PowSolver(Generic[ModelT]):
    """The skeleton of a family's solver: validation, ``accepts`` and the engine it runs on."""

    name: ClassVar[str]
    types: frozenset[str]
    model: ClassVar[type[BaseModel]]

    def __init__(self, engine: PowEngine) -> None:
        self._engine = engine

    def accepts(self, task_type: str, params: Mapping[str, Any]) -> bool:
        if task_type not in self.types:
            return False
        try:
            self.model.model_validate(dict(params))
        except ValidationError:
            return False
        return True

    def parse(self, job: SolveJob) -> ModelT:
        """The job's params through the task model again (they were validated at creation)."""
        try:
            parsed = self.model.model_validate(dict(job.params))
        except ValidationError as exc:
            raise TaskRejected("invalid_params", f"{job.type} task parameters are invalid: {exc}") from exc
        return parsed  # type: ignore[return-value]

    async def solve(self, job: SolveJob) -> Solution:  # pragma: no cover - each family overrides
        raise NotImplementedError


def check_deadline(job: SolveJob) -> None:
    if time.time() >= job.deadline:
        raise TaskRejected("solve_timeout", "the task deadline passed before solving started")


async def all_hits(searches: Sequence[Awaitable[Hit | None]], missing: Callable[[int], TaskRejected]) -> list[Hit]:
    """Every search's hit, in order; the first miss or error stops the others at once.

    A task of several searches (Cap's sub-challenges, Friendly Captcha's solutions) has failed as
    soon as one of them has: the rest must not keep the pool busy. ``missing(i)`` is the error of
    search ``i`` (from 0) exhausting its range.
    """

    async def one(index: int, search: Awaitable[Hit | None]) -> Hit:
        hit = await search
        if hit is None:
            raise missing(index)
        return hit

    tasks: list[asyncio.Task[Hit]] = []
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(one(index, search)) for index, search in enumerate(searches)]
    except* TaskRejected as failed:
        raise failed.exceptions[0] from None
    return [task.result() for task in tasks]
