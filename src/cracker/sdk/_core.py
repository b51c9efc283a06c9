"""The I/O-free core shared by the sync and async calls: each operation is a generator that yields
requests (and sleeps) and gets responses back; a driver per style does the I/O. So the two styles
cannot drift apart: they run the same code."""

from __future__ import annotations

import random
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import httpx

from cracker.sdk._errors import ERROR_CLASSES, SolviumError

#: Statuses worth another try: the same request may succeed (the server says so in ``retryable``).
_RETRY_STATUSES = {429, 500, 502, 503, 504}


@dataclass(frozen=True)
class Call:
    """One HTTP request of an operation."""

    method: str
    path: str
    json: Any = None
    params: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    #: Only calls that are safe to repeat are retried (every create carries an Idempotency-Key).
    retry: bool = True
    timeout: float | None = None


@dataclass(frozen=True)
class Sleep:
    seconds: float


Flow = Generator[Call | Sleep, httpx.Response | None, Any]


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 4
    base_delay: float = 0.5
    max_delay: float = 20.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Capped exponential backoff with full jitter; the server's Retry-After wins when longer."""
        backoff = random.uniform(0, min(self.max_delay, self.base_delay * 2**attempt))
        return max(backoff, retry_after or 0.0)


def error_of(error: dict[str, Any], status_code: int | None, request_id: str | None = None) -> SolviumError:
    """The typed exception of an error body (``{"code", "message", ...}``)."""
    code = str(error["code"])
    cls = ERROR_CLASSES.get(code, SolviumError)
    return cls(
        str(error.get("message", "")), code=code, retryable=bool(error.get("retryable", False)),
        request_id=error.get("request_id") or request_id, doc_url=error.get("doc_url"),
        status_code=status_code, details=error.get("details") or [],
    )


def error_from(response: httpx.Response) -> SolviumError:
    try:
        body = response.json()
        error = body["error"]
        code = str(error["code"])
    except (ValueError, KeyError, TypeError):
        return SolviumError(
            f"HTTP {response.status_code}: {response.text[:200]}", status_code=response.status_code,
            retryable=response.status_code in _RETRY_STATUSES,
        )
    del code
    return error_of(error, response.status_code, response.headers.get("x-request-id"))


def with_retries(call: Call, policy: RetryPolicy) -> Generator[Call | Sleep, httpx.Response | None, httpx.Response]:
    """Send ``call``, retrying transport failures and retryable errors; raise the final error.

    A transport failure arrives here as a ``None`` response.
    """
    attempt = 0
    while True:
        response = yield call
        if response is not None and response.is_success:
            return response
        error = error_from(response) if response is not None else None
        retryable = error.retryable if error is not None else True
        if not call.retry or not retryable or attempt >= policy.max_retries:
            if error is None:
                raise SolviumError(f"Could not reach the API for {call.method} {call.path}", code="transport_error")
            raise error
        retry_after = None
        if response is not None and "retry-after" in response.headers:
            try:
                retry_after = float(response.headers["retry-after"])
            except ValueError:
                retry_after = None
        yield Sleep(policy.delay(attempt, retry_after))
        attempt += 1
