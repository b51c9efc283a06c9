"""The Python SDK of Cracker's v2 API. Needs only httpx.

    from cracker.sdk import Solvium
    task = Solvium(api_key="...", base_url="http://127.0.0.1:8000").get_task_sync(task_id)
    print(task["status"], task["solution"])
"""

from cracker.sdk._client import DEFAULT_BASE_URL, Solvium
from cracker.sdk._errors import (
    AlreadyReported,
    InsufficientBalance,
    InsufficientScope,
    InternalError,
    InvalidApiKey,
    InvalidRequest,
    LeaseLost,
    MethodNotAllowed,
    MissingApiKey,
    NoSolverAvailable,
    NotFound,
    OfferNotFound,
    PayloadTooLarge,
    PoolTypeNotAllowed,
    RateLimitExceeded,
    ReportWindowClosed,
    ServiceUnavailable,
    SolveTimeout,
    SolviumError,
    TaskNotCompleted,
    TaskRejected,
    ValidationFailed,
)
from cracker.sdk._report import Report
from cracker.sdk._task import Task
from cracker.sdk._webhooks import SIGNATURE_HEADER, verify_webhook

__all__ = [
    "DEFAULT_BASE_URL",
    "SIGNATURE_HEADER",
    "AlreadyReported",
    "InsufficientBalance",
    "InsufficientScope",
    "InternalError",
    "InvalidApiKey",
    "InvalidRequest",
    "LeaseLost",
    "MethodNotAllowed",
    "MissingApiKey",
    "NoSolverAvailable",
    "NotFound",
    "OfferNotFound",
    "PayloadTooLarge",
    "PoolTypeNotAllowed",
    "RateLimitExceeded",
    "Report",
    "ReportWindowClosed",
    "ServiceUnavailable",
    "SolveTimeout",
    "Solvium",
    "SolviumError",
    "Task",
    "TaskNotCompleted",
    "TaskRejected",
    "ValidationFailed",
    "verify_webhook",
]
