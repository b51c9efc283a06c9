"""Tasks: the status machine and the record every layer passes around."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class TaskStatus(StrEnum):
    PENDING = "pending"  # queued, no worker yet
    RUNNING = "running"  # a worker holds its lease
    COMPLETED = "completed"  # terminal: solution set, hold captured
    REJECTED = "rejected"  # terminal: error set, hold released (or captured if the error is charged)

    @property
    def terminal(self) -> bool:
        return self in (TaskStatus.COMPLETED, TaskStatus.REJECTED)


@dataclass(frozen=True, slots=True)
class Task:
    id: str
    account_id: str
    type: str
    status: TaskStatus
    params: dict[str, Any]
    solution: dict[str, Any] | None
    error_code: str | None
    error_message: str | None
    #: Units held at creation (the offer's price then).
    price: int
    #: Units the task costs the account: the price once captured, 0 once released, None while open.
    cost: int | None
    created_at: float
    started_at: float | None
    completed_at: float | None
    deadline_at: float
    lease_owner: str | None
    attempts: int
    #: Where the terminal envelope is POSTed (signed), if the client asked for it.
    callback_url: str | None = None


@dataclass(frozen=True, slots=True)
class TaskView:
    """What a client reads of a task: everything but its (possibly megabytes of) request params."""

    id: str
    account_id: str
    type: str
    status: TaskStatus
    solution: dict[str, Any] | None
    error_code: str | None
    error_message: str | None
    cost: int | None
    created_at: float
    started_at: float | None
    completed_at: float | None


@dataclass(frozen=True, slots=True)
class ClaimedTask:
    """A task leased to one worker: the fence (owner, attempt) must accompany its outcome."""

    task: Task
    lease_owner: str
    attempt: int
