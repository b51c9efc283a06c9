"""The one small protocol every solver implements, in-process or in a worker process."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

#: A solution object as the envelope carries it: always a string ``token``, plus type-specific fields.
Solution = dict[str, Any]


@dataclass(frozen=True, slots=True)
class SolveJob:
    """What a solver gets: the task's validated request fields and the moment its work must end."""

    task_id: str
    type: str
    #: The request fields exactly as validated at creation (JSON-shaped: dicts, lists, str, int...).
    params: Mapping[str, Any]
    #: Wall-clock deadline (``time.time()`` seconds); past it the task is rejected ``solve_timeout``.
    deadline: float
    #: The account that sent it: shared solvers (the proof-of-work pool) take turns by account.
    account_id: str | None = None


@runtime_checkable
class Solver(Protocol):
    @property
    def name(self) -> str:
        """A short, stable name (for logs and metrics)."""
        ...

    @property
    def types(self) -> frozenset[str]:
        """The task types this solver may take."""
        ...

    def accepts(self, task_type: str, params: Mapping[str, Any]) -> bool:
        """Whether this solver can solve that task; cheap and pure (called at creation time)."""
        ...

    async def solve(self, job: SolveJob) -> Solution:
        """Solve the task, or raise ``cracker.domain.errors.TaskRejected`` with a task error code.

        Must never block the event loop: CPU-heavy work goes to a process pool.
        """
        ...
