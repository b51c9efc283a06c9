"""The task envelope as the SDK returns it: a dict (``task["status"]``) with typed accessors."""

from __future__ import annotations

from typing import Any

TERMINAL = ("completed", "rejected")


class Task(dict[str, Any]):
    """The v2 envelope. Item access works as on the published page; properties add types."""

    @property
    def task_id(self) -> str:
        return str(self["task_id"])

    @property
    def status(self) -> str:
        return str(self["status"])

    @property
    def done(self) -> bool:
        return self.status in TERMINAL

    @property
    def solution(self) -> dict[str, Any] | None:
        solution: dict[str, Any] | None = self.get("solution")
        return solution

    @property
    def token(self) -> str | None:
        """The string to submit to the protected page, once completed."""
        solution = self.solution
        return None if solution is None else str(solution.get("token", ""))

    @property
    def error(self) -> dict[str, Any] | None:
        error: dict[str, Any] | None = self.get("error")
        return error
