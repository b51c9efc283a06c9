"""Workers: who may lease tasks, and the record of one that is (or was) attached."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from cracker.domain.task_types import DEFAULT_POOL_TYPES, TASK_TYPES


class WorkerKind(StrEnum):
    #: Built-in solvers: a `cracker worker` process, or a server's in-process worker.
    BUILTIN = "builtin"
    #: A pool attached over HTTP with a worker-scoped key.
    REMOTE = "remote"


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    id: str
    kind: WorkerKind
    #: The account of the key a remote pool registered with; None for built-in workers.
    account_id: str | None
    name: str
    types: tuple[str, ...]
    concurrency: int
    started_at: float
    heartbeat_at: float
    expires_at: float

    def live(self, at: float) -> bool:
        return self.expires_at > at


@dataclass(frozen=True, slots=True)
class HeldLease:
    """A task a worker holds, as its heartbeat reports it."""

    task_id: str
    attempt: int
    lease_expires_at: float


@dataclass(frozen=True, slots=True)
class Completion:
    """A solution reported under a lease: it counts only while (lease_owner, attempt) still hold it."""

    task_id: str
    lease_owner: str
    attempt: int
    solution: dict[str, Any]


@dataclass(frozen=True, slots=True)
class PoolGrant:
    """The task types an operator allows an account's pools beyond ``DEFAULT_POOL_TYPES``."""

    account_id: str
    all_types: bool
    types: tuple[str, ...]
    updated_at: float


def allowed_pool_types(grant: PoolGrant | None) -> frozenset[str]:
    """The types a pool of the grant's account may register for and lease."""
    if grant is None:
        return DEFAULT_POOL_TYPES
    if grant.all_types:
        return frozenset(TASK_TYPES)
    return DEFAULT_POOL_TYPES | frozenset(grant.types)


TaskEventKind = Literal["leased", "completed", "rejected"]


@dataclass(frozen=True, slots=True)
class TaskEvent:
    """One thing a remote pool did to a task, as operators see it in the task's history."""

    task_id: str
    at: float
    event: TaskEventKind
    worker_id: str
    worker_name: str
    #: The account of the worker key that did it.
    pool_account_id: str | None
    attempt: int
    error_code: str | None = None
