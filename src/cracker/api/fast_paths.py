"""The routes served ahead of FastAPI (see ``poll`` and ``create_fast``): the hot ones."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.types import Receive, Scope, Send

from cracker.api.create_fast import serve_create
from cracker.api.poll import serve_poll


def fast_paths(max_body_bytes: int) -> Callable[[Scope, Receive, Send], Awaitable[Receive | None]]:
    async def serve(scope: Scope, receive: Receive, send: Send) -> Receive | None:
        """None when a fast path answered; else the receive to go on with."""
        if await serve_poll(scope, receive, send):
            return None
        answered, rest = await serve_create(scope, receive, send, max_body_bytes=max_body_bytes)
        return None if answered else rest

    return serve
