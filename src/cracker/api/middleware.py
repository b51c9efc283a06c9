"""Pure ASGI middleware (no per-request task or body copy): request ids, body limit, last-resort 500."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from fastapi import FastAPI
from starlette.requests import HTTPConnection
from starlette.types import Message, Receive, Scope, Send

from cracker.api.envelope import error_response, request_id
from cracker.domain.clock import new_id

log = logging.getLogger("cracker.api")


class RequestContextMiddleware:
    """Gives every request a UUIDv7 id (``x-request-id`` on every response), refuses bodies over the
    limit with 413, and turns any unhandled exception into the 500 envelope without a stack trace."""

    def __init__(
        self, app: FastAPI, max_body_bytes: int,
        fast_path: Callable[[Scope, Receive, Send], Awaitable[Receive | None]] | None = None,
    ) -> None:
        self.app = app
        self.fastapi = app
        self.max_body_bytes = max_body_bytes
        # Offered every request first, ahead of FastAPI's router, dependency solving and inner
        # middleware; None when it answered (the poll and the creates: cracker.api.fast_paths),
        # else the receive to go on with (a body it read is replayed).
        self.fast_path = fast_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The last resort: whatever fails in here (this layer included) answers the 500 envelope."""
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self._handle(scope, receive, tracking_send)
        except Exception:
            if scope["type"] != "http":
                raise
            log.exception("unhandled error in %s %s", scope.get("method"), scope.get("path"))
            if not started:
                conn = HTTPConnection(scope)
                rid = request_id(conn)
                response = error_response(
                    conn, "internal_error", "Internal server error", headers={"x-request-id": rid} if rid else None
                )
                await response(scope, receive, send)

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = new_id()
        scope["app"] = self.app
        scope.setdefault("state", {})["request_id"] = rid
        rid_header = (b"x-request-id", rid.encode())

        async def send_direct(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), rid_header]
            await send(message)

        if self.fast_path is not None:
            rest = await self.fast_path(scope, receive, send_direct)
            if rest is None:
                return
            receive = rest

        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            await self._too_large(scope, send_direct)
            return
        await self._serve_app(scope, receive, send_direct, rid)

    async def _serve_app(self, scope: Scope, receive: Receive, send: Send, rid: str) -> None:
        started = False
        too_large = False
        received = 0

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if too_large:
                return  # the app's answer to a truncated body is replaced by the 413 below
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        async def counting_receive() -> Message:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    too_large = True
                    raise _BodyTooLarge
            return message

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception as exc:
            if too_large or isinstance(exc, _BodyTooLarge):
                too_large = True
            else:
                log.exception("unhandled error in %s %s (request %s)", scope["method"], scope["path"], rid)
                if not started:
                    conn = HTTPConnection(scope)
                    await error_response(conn, "internal_error", "Internal server error")(scope, receive, send)
                return
        if too_large and not started:
            await self._too_large(scope, send)

    async def _too_large(self, scope: Scope, send: Send) -> None:
        conn = HTTPConnection(scope)
        response = error_response(
            conn, "payload_too_large", f"The request body exceeds {self.max_body_bytes} bytes"
        )

        async def no_body() -> Message:
            return {"type": "http.disconnect"}

        await response(scope, no_body, send)


class _BodyTooLarge(Exception):
    pass


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
