"""What the web dashboard reads and keeps: sessions, ledger and task rows, per-bucket figures."""

from __future__ import annotations

from dataclasses import dataclass

from cracker.domain.accounts import Scope


@dataclass(frozen=True, slots=True)
class DashboardSession:
    """A signed-in browser: the key it signed in with, and the CSRF token its forms carry."""

    key_id: str
    account_id: str
    scope: Scope
    csrf_token: str
    expires_at: float

    @property
    def operator(self) -> bool:
        return self.scope is Scope.ADMIN


@dataclass(frozen=True, slots=True)
class LedgerRow:
    id: int
    task_id: str | None
    kind: str
    available_delta: int
    held_delta: int
    created_at: float
    note: str | None


@dataclass(frozen=True, slots=True)
class TaskRow:
    """A task as the dashboard lists it: no parameters, no solution."""

    id: str
    type: str
    status: str
    price: int
    cost: int | None
    created_at: float
    started_at: float | None
    completed_at: float | None
    error_code: str | None


@dataclass(frozen=True, slots=True)
class BucketCount:
    """Tasks created in one time bucket (start, epoch seconds) that ended or stand in ``status``."""

    bucket: float
    type: str
    status: str
    count: int
    cost: int
    #: A rejected task's error code; None otherwise.
    error_code: str | None = None


@dataclass(frozen=True, slots=True)
class AccountRow:
    id: str
    name: str
    available: int
    held: int
    created_at: float


@dataclass(frozen=True, slots=True)
class QueuePeak:
    """The most tasks of a type queued and running in one time bucket (start, epoch seconds), over
    the samples taken in it."""

    bucket: float
    type: str
    pending: int
    running: int
