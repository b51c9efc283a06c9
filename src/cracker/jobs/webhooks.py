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
from cracker.domain.callbacks import CallbackPolicy
from cracker.domain.envelope import task_envelope
from cracker.domain.errors import ServiceUnavailable
from cracker.domain.webhooks import SIGNATURE_HEADER, DeliveryAttempt, DueDelivery, sign
from cracker.jobs.delivery_pool import OwnerPool
from cracker.jobs.webhook_attempt import post_once
from cracker.service.webhooks import WebhookService

log = logging.getLogger("cracker.webhooks")


class ForbiddenDestination(httpcore.ConnectError):
    pass


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves the host itself, refuses private, loopback, link-local and metadata addresses (and
    ports the operator does not allow), and connects to the address it checked, so a DNS answer
    that changes between check and connect (rebinding) cannot reach an internal service. TLS still
    verifies the URL's host name."""

    def __init__(self, policy: CallbackPolicy) -> None:
        self._inner = httpcore.AnyIOBackend()
        self._policy = policy

    async def connect_tcp(
        self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        if not self._policy.port_allowed(port):
            raise ForbiddenDestination(f"port {port} is not allowed for callbacks")
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:  # as httpcore's own backends report it: a failed connection
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        addresses = [str(info[4][0]) for info in infos]
        if not all(self._policy.address_allowed(a) for a in addresses):
            raise ForbiddenDestination(f"{host} resolves to a private or local address")
        return await self._inner.connect_tcp(addresses[0], port, timeout, local_address, socket_options)

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _GuardedTransport(httpx.AsyncHTTPTransport):
    def __init__(self, policy: CallbackPolicy, max_connections: int) -> None:
        super().__init__(trust_env=False)
        # httpx takes no network backend; its pool does. httpx's default pool settings, with a
        # connection for each delivery slot (a slot never waits for another's connection).
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(), max_connections=max_connections, max_keepalive_connections=20,
            keepalive_expiry=5.0, network_backend=_GuardedBackend(policy),
        )


#: A delivery's lease outlasts its attempt's deadline by this much: time to build the body before
#: and to record the outcome after, so that no other dispatcher sends it again meanwhile.
LEASE_MARGIN_S = 60.0


class WebhookDispatcher:
    """Claims due deliveries as slots free up and runs each in its own slot of a bounded pool,
    with at most ``account_concurrency`` of one account's in flight: a slow receiver holds its
    own slots for at most ``timeout_s`` each, never the dispatcher."""

    def __init__(
        self, service: WebhookService, *, docs_base: str, policy: CallbackPolicy | None = None,
        poll_s: float = 0.5, timeout_s: float = 10.0, concurrency: int = 32, account_concurrency: int = 4,
        max_response_bytes: int = 4096,
    ) -> None:
        self._service = service
        self._docs_base = docs_base
        self._poll_s = poll_s
        self._timeout_s = timeout_s
        self._max_response_bytes = max_response_bytes
        self._pool = OwnerPool(concurrency, account_concurrency)
        self._client = httpx.AsyncClient(
            transport=_GuardedTransport(policy or CallbackPolicy(), concurrency), timeout=timeout_s,
            follow_redirects=False, headers={"User-Agent": f"cracker-webhooks/{__version__}"},
        )
        self._loop_task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._loop_task = asyncio.create_task(self._run(), name="cracker-webhooks")

    async def stop(self) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
            await asyncio.gather(self._loop_task, return_exceptions=True)
        await self._pool.close()
        await self._client.aclose()

    async def _run(self) -> None:
        while True:
            due: list[DueDelivery] = []
            if self._pool.free > 0:
                try:
                    due = await self._service.claim_due(
                        self._pool.free, lease_s=self._timeout_s + LEASE_MARGIN_S,
                        per_account=self._pool.per_owner, in_flight=self._pool.in_flight,
                    )
                except ServiceUnavailable as exc:
                    log.warning("webhook dispatch: %s", exc.message)
                except Exception:
                    log.exception("webhook dispatch failed; retrying")
                for delivery in due:
                    self._pool.start(delivery.account_id, self._deliver(delivery), f"webhook {delivery.id}")
            if not due or self._pool.free == 0:
                # Claim again when a slot frees up, or after the poll interval.
                await self._pool.wait_any(self._poll_s)

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
        result = await post_once(
            self._client, delivery.url, body, headers, timeout_s=self._timeout_s,
            max_response_bytes=self._max_response_bytes,
        )
        attempt = DeliveryAttempt(
            delivery.id, attempt_no, at, result.status_code, result.error, int((time.monotonic() - started) * 1000)
        )
        outcome = await self._service.record(delivery, attempt, delivered=result.delivered)
        log.info("webhook %s for task %s attempt %d: %s", delivery.id, delivery.task_id, attempt_no,
                 result.detail or result.error or "delivered")
        if outcome == "failed":
            log.warning("webhook %s for task %s given up after %d attempts", delivery.id, delivery.task_id,
                        attempt_no)
