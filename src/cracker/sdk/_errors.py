"""Typed exceptions: one class per API error code under one base, and TaskRejected for failed tasks."""

from __future__ import annotations

from typing import Any


class SolviumError(Exception):
    """Base of every error the SDK raises for an answer of the API."""

    code: str = "unknown_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        retryable: bool = False,
        request_id: str | None = None,
        doc_url: str | None = None,
        status_code: int | None = None,
        details: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.retryable = retryable
        self.request_id = request_id
        self.doc_url = doc_url
        self.status_code = status_code
        self.details = details or []

    def __str__(self) -> str:
        suffix = f" (request {self.request_id})" if self.request_id else ""
        return f"{self.code}: {self.message}{suffix}"


class MissingApiKey(SolviumError):
    code = "missing_api_key"


class InvalidApiKey(SolviumError):
    code = "invalid_api_key"


class InsufficientScope(SolviumError):
    code = "insufficient_scope"


class ValidationFailed(SolviumError):
    code = "validation_failed"


class InvalidRequest(SolviumError):
    code = "invalid_request"


class NotFound(SolviumError):
    code = "not_found"


class OfferNotFound(SolviumError):
    code = "offer_not_found"


class InsufficientBalance(SolviumError):
    code = "insufficient_balance"


class RateLimitExceeded(SolviumError):
    code = "rate_limit_exceeded"


class InternalError(SolviumError):
    code = "internal_error"


class ServiceUnavailable(SolviumError):
    code = "service_unavailable"


class MethodNotAllowed(SolviumError):
    code = "method_not_allowed"


class PayloadTooLarge(SolviumError):
    code = "payload_too_large"


class NoSolverAvailable(SolviumError):
    code = "no_solver_available"


class LeaseLost(SolviumError):
    """Worker API: the task's lease expired or moved to another worker; the result was dropped."""

    code = "lease_lost"


class PoolTypeNotAllowed(SolviumError):
    """Worker API: this key's account may not serve these task types (an operator may allow them)."""

    code = "pool_type_not_allowed"


class TaskNotCompleted(SolviumError):
    """A report of a task that is not completed (pending, running or rejected)."""

    code = "task_not_completed"


class AlreadyReported(SolviumError):
    """A second report of a task: the first one stands."""

    code = "already_reported"


class ReportWindowClosed(SolviumError):
    """A report after the operator's window (after the task completed) has passed."""

    code = "report_window_closed"


class TaskRejected(SolviumError):
    """The task ended ``rejected``; ``code`` is its task error code (``solve_timeout``, ...)."""

    def __init__(self, task: dict[str, Any]) -> None:
        error = task.get("error") or {}
        super().__init__(
            str(error.get("message", "The task was rejected")),
            code=str(error.get("code", "general_error")),
            retryable=bool(error.get("retryable", False)),
            doc_url=error.get("doc_url"),
        )
        self.task = task
        self.task_id = str(task.get("task_id", ""))


class SolveTimeout(SolviumError, TimeoutError):
    """The task did not end within the time the caller gave ``solve``."""

    code = "client_timeout"


ERROR_CLASSES: dict[str, type[SolviumError]] = {
    cls.code: cls
    for cls in (
        MissingApiKey, InvalidApiKey, InsufficientScope, ValidationFailed, InvalidRequest, NotFound,
        OfferNotFound, InsufficientBalance, RateLimitExceeded, InternalError, ServiceUnavailable,
        MethodNotAllowed, PayloadTooLarge, NoSolverAvailable, LeaseLost, PoolTypeNotAllowed, TaskNotCompleted,
        AlreadyReported, ReportWindowClosed,
    )
}
