"""The webhook dispatcher: POSTs each terminal envelope to its callback URL, signed, retried for a day."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx
import orjson

from cracker import __version__
from cracker.domain.envelope import task_envelope
from cracker.domain.webhooks import SIGNATURE_HEADER, DeliveryAttempt, DueDelivery, forbidden_address, sign
from cracker.service.webhooks import WebhookService

log = logging.getLogger("cracker.webhooks")


class ForbiddenDestination(httpcore.ConnectError):
    pass


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves the host itself, refuses private, loopback, link-local and metadata addresses, and
    connects to the address it checked, so a DNS answer that changes between check and connect
    (rebinding) cannot reach an internal service. TLS still verifies the URL's host name."""

    def __init__(self, allow_private: bool) -> None:
        self._inner = httpcore.AnyIOBackend()
        self._allow_private = allow_private

    async def connect_tcp(
        self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        addresses = [str(info[4][0]) for info in infos]
        if not self._allow_private and any(forbidden_address(a) for a in addresses):
            raise ForbiddenDestination(f"{host} resolves to a private or local address")
        return await self._inner.connect_tcp(addresses[0], port, timeout, local_address, socket_options)

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _GuardedTransport(httpx.AsyncHTTPTransport):
    def __init__(self, allow_private: bool) -> None:
        super().__init__(trust_env=False)
        # httpx takes no network backend; its pool does. Same settings as httpx's default pool.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(), max_connections=100, max_keepalive_connections=20,
            keepalive_expiry=5.0, network_backend=_GuardedBackend(allow_private),
        )


class WebhookDispatcher:
    def __init__(
        self, service: WebhookService, *, docs_base: str, allow_private: bool, poll_s: float = 0.5,
        timeout_s: float = 10.0, concurrency: int = 16,
    ) -> None:
        self._service = service
        self._docs_base = docs_base
        self._poll_s = poll_s
        self._concurrency = concurrency
        self._client = httpx.AsyncClient(
            transport=_GuardedTransport(allow_private), timeout=timeout_s, follow_redirects=False,
            headers={"User-Agent": f"cracker-webhooks/{__version__}"},
        )
        self._loop_task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._loop_task = asyncio.create_task(self._run(), name="cracker-webhooks")

    async def stop(self) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
            await asyncio.gather(self._loop_task, return_exceptions=True)
        await self._client.aclose()

    async def _run(self) -> None:
        while True:
            try:
                due = await self._service.claim_due(self._concurrency, lease_s=60)
                outcomes = await asyncio.gather(*(self._deliver(d) for d in due), return_exceptions=True)
                for delivery, outcome in zip(due, outcomes, strict=True):
                    if isinstance(outcome, BaseException):
                        log.error("webhook %s failed: %r", delivery.id, outcome)
            except Exception:
                log.exception("webhook dispatch failed; retrying")
                due = []
            if not due:
                await asyncio.sleep(self._poll_s)

    async def _deliver(self, delivery: DueDelivery) -> None:
        task, secrets = await self._service.payload_of(delivery)
        if task is None:
            return
        body = orjson.dumps(task_envelope(task, self._docs_base))
        attempt_no = delivery.attempts + 1
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(secrets.current, int(time.time()), body, previous=secrets.previous),
            "X-Cracker-Delivery": delivery.id,
            "X-Cracker-Attempt": str(attempt_no),
        }
        started = time.monotonic()
        at = time.time()
        status_code: int | None = None
        error: str | None = None
        try:
            response = await self._client.post(delivery.url, content=body, headers=headers)
            status_code = response.status_code
            if not 200 <= status_code < 300:
                error = f"HTTP {status_code}"
        except Exception as exc:
            # httpx raises ValueError, not HTTPError, for some malformed URLs: the receiver's
            # problem to report, never the dispatcher's to die of.
            error = f"{type(exc).__name__}: {exc}"[:500]
        attempt = DeliveryAttempt(
            delivery.id, attempt_no, at, status_code, error, int((time.monotonic() - started) * 1000)
        )
        outcome = await self._service.record(delivery, attempt, delivered=error is None)
        log.info("webhook %s for task %s attempt %d: %s", delivery.id, delivery.task_id, attempt_no,
                 error or "delivered")
        if outcome == "failed":
            log.warning("webhook %s for task %s given up after %d attempts", delivery.id, delivery.task_id,
                        attempt_no)
