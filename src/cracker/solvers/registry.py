"""The set of solvers this process runs: which solver takes which task."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from cracker.solvers.base import Solver


class SolverRegistry:
    def __init__(self, solvers: Iterable[Solver]) -> None:
        self._by_type: dict[str, list[Solver]] = {}
        for solver in solvers:
            for task_type in solver.types:
                self._by_type.setdefault(task_type, []).append(solver)

    @property
    def types(self) -> frozenset[str]:
        return frozenset(self._by_type)

    def find(self, task_type: str, params: Mapping[str, Any]) -> Solver | None:
        for solver in self._by_type.get(task_type, ()):
            if solver.accepts(task_type, params):
                return solver
        return None

    def can_serve(self, task_type: str, params: Mapping[str, Any]) -> bool:
        return self.find(task_type, params) is not None

    def pool_only(self, task_type: str, params: Mapping[str, Any]) -> bool:
        return not self.can_serve(task_type, params)
