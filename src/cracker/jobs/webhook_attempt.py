"""One webhook POST under a total deadline, its answer read as a capped stream.

httpx's timeouts apply to each network operation: a receiver that answers and then sends one
byte every few seconds never trips them. The deadline here covers the whole attempt (name
lookup, connection, request, answer), and at most ``max_response_bytes`` of the answer are read
(the rest is dropped with the connection), so an attempt costs bounded time and memory.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx


@dataclass(frozen=True, slots=True)
class AttemptResult:
    status_code: int | None
    #: What the account sees in its delivery log; None for a 2xx answer.
    error: str | None
    #: What the operator's log says: the cause behind ``error``.
    detail: str | None = None

    @property
    def delivered(self) -> bool:
        return self.error is None


def public_error(exc: BaseException, timeout_s: float) -> str:
    """The delivery log's words for a failure.

    Every failure to reach the receiver reads the same, whatever the cause (a refused private
    address, a name that does not resolve, a refused or reset connection): telling them apart
    would let an account map the operator's internal network through its delivery log.
    """
    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        return f"no answer within {timeout_s:g} s"
    if isinstance(exc, httpx.ConnectError | OSError):
        return "connection failed"
    if isinstance(exc, httpx.HTTPError):
        return "the receiver's answer was not valid HTTP"
    # httpx raises ValueError, not HTTPError, for some malformed URLs.
    return "the callback URL cannot be used"


async def post_once(
    client: httpx.AsyncClient, url: str, body: bytes, headers: dict[str, str], *, timeout_s: float,
    max_response_bytes: int,
) -> AttemptResult:
    status_code: int | None = None
    try:
        async with asyncio.timeout(timeout_s):
            async with client.stream("POST", url, content=body, headers=headers) as response:
                status_code = response.status_code
                # Read a little of the answer (a receiver may wait for us to read before it
                # finishes), then drop the rest with the connection.
                received = 0
                async for chunk in response.aiter_raw():
                    received += len(chunk)
                    if received >= max_response_bytes:
                        break
    except Exception as exc:
        if status_code is None:
            return AttemptResult(None, public_error(exc, timeout_s), f"{type(exc).__name__}: {exc}"[:500])
        # The status came in time; a slow or broken body after it does not undo the answer.
    assert status_code is not None  # set before the body is read
    if 200 <= status_code < 300:
        return AttemptResult(status_code, None)
    return AttemptResult(status_code, f"HTTP {status_code}")
