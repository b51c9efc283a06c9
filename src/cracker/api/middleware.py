"""Pure ASGI middleware (no per-request task or body copy): request ids, body limit, last-resort 500."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI
from starlette.requests import HTTPConnection
from starlette.types import Message, Receive, Scope, Send

from cracker.api.envelope import error_response
from cracker.domain.clock import new_id
from cracker.logredact import redact
from cracker.logs import RequestLogContext, current_request

log = logging.getLogger("cracker.api")
access_log = logging.getLogger("cracker.access")


class RequestContextMiddleware:
    """Gives every request a UUIDv7 id (``x-request-id`` on every response; the client's own when it
    sends a UUIDv7 one), writes its access line, refuses bodies over the
    limit with 413, and turns any unhandled exception into the 500 envelope without a stack trace."""

    def __init__(
        self, app: FastAPI, max_body_bytes: int,
        fast_path: Callable[[Scope, Receive, Send], Awaitable[Receive | None]] | None = None,
        access_log: bool = True,
    ) -> None:
        self.app = app
        self.fastapi = app
        self.max_body_bytes = max_body_bytes
        # Offered every request first, ahead of FastAPI's router, dependency solving and inner
        # middleware; None when it answered (the poll and the creates: cracker.api.fast_paths),
        # else the receive to go on with (a body it read is replayed).
        self.fast_path = fast_path
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The last resort: whatever fails in here (this layer included) answers the 500 envelope.
        Every request ends with one access line, whatever happened."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        status = 0
        declared, client_rid = _read_headers(scope)
        rid = client_rid or new_id()
        scope["app"] = self.app
        scope.setdefault("state", {})["request_id"] = rid
        rid_header = (b"x-request-id", rid.encode())
        context = RequestLogContext(rid)
        token = current_request.set(context)

        async def tracking_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), rid_header]
            await send(message)

        try:
            await self._handle(scope, receive, tracking_send, declared)
        except Exception:
            log.exception("unhandled error in %s %s", scope.get("method"), scope.get("path"))
            if not status:
                conn = HTTPConnection(scope)
                await error_response(conn, "internal_error", "Internal server error")(scope, receive, tracking_send)
        finally:
            current_request.reset(token)
            if self.access_log:
                _log_access(scope, context, status, began)

    async def _handle(self, scope: Scope, receive: Receive, send: Send, declared: int | None) -> None:
        if self.fast_path is not None:
            rest = await self.fast_path(scope, receive, send)
            if rest is None:
                return
            receive = rest
        if declared is not None and declared > self.max_body_bytes:
            await self._too_large(scope, send)
            return
        await self._serve_app(scope, receive, send, str(scope["state"]["request_id"]))

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


def _read_headers(scope: Scope) -> tuple[int | None, str | None]:
    """The declared body length, and the client's ``x-request-id`` when it is a UUIDv7 like ours
    (so that a client's or a proxy's id follows the request into our log; anything else is
    ignored: request ids stay UUIDv7, and no one writes what they like into a log line)."""
    declared: int | None = None
    client_rid: str | None = None
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                declared = int(value)
            except ValueError:
                declared = None
        elif name == b"x-request-id" and _UUID.fullmatch(value):
            client_rid = value.decode().lower()
    return declared, client_rid


_UUID = re.compile(rb"(?i)[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


def _log_access(scope: Scope, context: RequestLogContext, status: int, began: float) -> None:
    """The request's one access line: its route's template (not the path, whose ids would make
    every line unique), status and duration, with the request and account ids."""
    level = logging.ERROR if status >= 500 else logging.WARNING if status == 0 else logging.INFO
    if not access_log.isEnabledFor(level):
        return
    # FastAPI's router leaves the matched route in the scope; so does the poll fast path.
    template: str | None = getattr(scope.get("route"), "path", None)
    path = redact(scope["path"])
    method = scope["method"]
    access_log.log(
        level,
        f"{method} {template or path} {status}",
        extra={
            "request_id": context.request_id,
            "account_id": context.account_id,
            "method": method,
            "route": template,
            "path": path,
            "status": status,
            "duration_ms": round((time.perf_counter() - began) * 1000, 3),
        },
    )
