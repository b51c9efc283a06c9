"""One delivery attempt: a total deadline, and an answer read as a capped stream."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx

from cracker.jobs.webhook_attempt import AttemptResult, post_once
from tests.timing import within


async def _attempt(
    handler: httpx.MockTransport, timeout_s: float = 0.5, max_bytes: int = 4096
) -> tuple[float, AttemptResult]:
    async with httpx.AsyncClient(transport=handler) as client:
        started = time.monotonic()
        result = await post_once(client, "https://example.com/hook", b"{}", {}, timeout_s=timeout_s,
                                 max_response_bytes=max_bytes)
        return time.monotonic() - started, result


async def test_an_endless_body_is_read_only_up_to_the_cap() -> None:
    sent = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal sent
        while True:
            sent += 1024
            yield b"x" * 1024

    async def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=endless())

    _, result = await _attempt(httpx.MockTransport(handle))
    assert result.delivered
    assert sent <= 8 * 1024


async def test_a_trickled_body_is_cut_at_the_deadline_and_the_status_stands() -> None:
    async def trickle() -> AsyncIterator[bytes]:
        for _ in range(60):
            yield b"x"
            await asyncio.sleep(1)

    async def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=trickle())

    took, result = await _attempt(httpx.MockTransport(handle))
    assert took < within(5)  # generous: the deadline is 0.5 s, the trickle a minute
    assert result.status_code == 200 and result.delivered


async def test_no_answer_within_the_deadline_is_a_timeout() -> None:
    async def handle(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(60)
        return httpx.Response(204)

    took, result = await _attempt(httpx.MockTransport(handle))
    assert took < within(5)
    assert result.status_code is None and result.error == "no answer within 0.5 s"


async def test_a_refused_connection_reads_like_any_other() -> None:
    async def handle(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("10.0.0.1 is private", request=request)

    _, result = await _attempt(httpx.MockTransport(handle))
    assert result.error == "connection failed"
    assert "private" in (result.detail or "")  # for the operator's log only
