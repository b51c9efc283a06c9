"""One exception tree for the whole service; the API layer maps it to the error envelope."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

from cracker.domain.catalogue import ErrorSpec, spec_for


@dataclass(frozen=True, slots=True)
class FieldError:
    """One entry of ``details[]`` on ``validation_failed``."""

    field: str
    code: str
    message: str


class CrackerError(Exception):
    """Base of every error the service reports to a client. ``code`` keys the catalogue."""

    code: ClassVar[str] = "internal_error"

    def __init__(
        self,
        message: str | None = None,
        *,
        details: Sequence[FieldError] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.message = message or self.spec.message
        self.details = tuple(details)
        self.headers = dict(headers or {})
        super().__init__(self.message)

    @property
    def spec(self) -> ErrorSpec:
        return spec_for(self.code)


class MissingApiKey(CrackerError):
    code = "missing_api_key"


class InvalidApiKey(CrackerError):
    code = "invalid_api_key"


class InsufficientScope(CrackerError):
    code = "insufficient_scope"


class ValidationFailed(CrackerError):
    code = "validation_failed"

    def __init__(self, details: Sequence[FieldError], message: str | None = None) -> None:
        super().__init__(message or f"{len(details)} field(s) failed validation", details=details)


class InvalidRequest(CrackerError):
    code = "invalid_request"


class NotFound(CrackerError):
    code = "not_found"


class OfferNotFound(CrackerError):
    code = "offer_not_found"


class InsufficientBalance(CrackerError):
    code = "insufficient_balance"


class RateLimitExceeded(CrackerError):
    code = "rate_limit_exceeded"

    def __init__(self, retry_after_s: int, message: str | None = None) -> None:
        super().__init__(
            message or f"Rate limit exceeded; retry in {retry_after_s} s",
            headers={"Retry-After": str(retry_after_s)},
        )


class InternalError(CrackerError):
    code = "internal_error"


class ServiceUnavailable(CrackerError):
    code = "service_unavailable"


class MethodNotAllowed(CrackerError):
    code = "method_not_allowed"


class PayloadTooLarge(CrackerError):
    code = "payload_too_large"


class NoSolverAvailable(CrackerError):
    code = "no_solver_available"


class PoolTypeNotAllowed(CrackerError):
    code = "pool_type_not_allowed"


class LeaseLost(CrackerError):
    code = "lease_lost"


class TaskNotCompleted(CrackerError):
    code = "task_not_completed"


class AlreadyReported(CrackerError):
    code = "already_reported"


class ReportWindowClosed(CrackerError):
    code = "report_window_closed"


class TaskRejected(Exception):
    """Raised by a solver (or the lifecycle) to end a task ``rejected`` with a task error code."""

    def __init__(self, code: str, message: str | None = None) -> None:
        spec = spec_for(code)  # KeyError here is a programming error: unknown codes never ship
        if spec.kind != "task":
            raise ValueError(f"{code} is not a task error code")
        self.code = code
        self.message = message or spec.message
        super().__init__(f"{code}: {self.message}")
