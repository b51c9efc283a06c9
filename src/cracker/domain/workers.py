"""Workers: who may lease tasks, and the record of one that is (or was) attached."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


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
