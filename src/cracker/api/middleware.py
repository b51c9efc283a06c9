"""Pure ASGI middleware (no per-request task or body copy): request ids, body limit, last-resort 500."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from fastapi import FastAPI
from starlette.requests import HTTPConnection, Request
from starlette.routing import Match, Route
from starlette.types import Message, Receive, Scope, Send

from cracker.api.envelope import cracker_error_response, error_response, request_id
from cracker.domain.clock import new_id
from cracker.domain.errors import CrackerError

log = logging.getLogger("cracker.api")


class RequestContextMiddleware:
    """Gives every request a UUIDv7 id (``x-request-id`` on every response), refuses bodies over the
    limit with 413, and turns any unhandled exception into the 500 envelope without a stack trace."""

    def __init__(self, app: FastAPI, max_body_bytes: int, fast_routes: Sequence[Route] = ()) -> None:
        self.app = app
        self.fastapi = app
        self.max_body_bytes = max_body_bytes
        # Bare endpoints served from here, before FastAPI's router, dependency solving and inner
        # middleware: only the hottest read route (see cracker.api.routes.tasks.read_task).
        self.fast_routes = tuple(fast_routes)

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

        if scope["method"] == "GET":
            for route in self.fast_routes:
                match, child_scope = route.matches(scope)
                if match is Match.FULL:
                    scope.update(child_scope)
                    await _serve_bare(route, scope, receive, send_direct)
                    return

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


async def _serve_bare(route: Route, scope: Scope, receive: Receive, send: Send) -> None:
    request = Request(scope, receive)
    try:
        response = await route.endpoint(request)
    except CrackerError as exc:
        response = cracker_error_response(request, exc)
    except Exception:
        log.exception("unhandled error in %s %s (request %s)", scope["method"], scope["path"], request_id(request))
        response = error_response(request, "internal_error", "Internal server error")
    await response(scope, receive, send)


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
