"""Pure ASGI middleware (no per-request task or body copy): request ids, body limit, last-resort 500."""

from __future__ import annotations

import logging

from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cracker.api.envelope import error_response
from cracker.domain.clock import new_id

log = logging.getLogger("cracker.api")


class RequestContextMiddleware:
    """Gives every request a UUIDv7 id (``x-request-id`` on every response), refuses bodies over the
    limit with 413, and turns any unhandled exception into the 500 envelope without a stack trace."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = new_id()
        scope.setdefault("state", {})["request_id"] = rid
        rid_header = (b"x-request-id", rid.encode())
        started = False
        too_large = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if too_large:
                return  # the app's answer to a truncated body is replaced by the 413 below
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", ()), rid_header]
            await send(message)

        async def send_direct(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), rid_header]
            await send(message)

        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            await self._too_large(scope, send_direct)
            return

        received = 0

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
            await self.app(scope, counting_receive, send_with_id)
        except Exception as exc:
            if too_large or isinstance(exc, _BodyTooLarge):
                too_large = True
            else:
                log.exception("unhandled error in %s %s (request %s)", scope["method"], scope["path"], rid)
                if not started:
                    conn = HTTPConnection(scope)
                    await error_response(conn, "internal_error", "Internal server error")(
                        scope, receive, send_direct
                    )
                return
        if too_large and not started:
            await self._too_large(scope, send_direct)

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
