"""The coalescing transport under uvicorn's protocol (cracker.http_protocol): a response's writes
within one event-loop turn reach the socket as one, and nothing is reordered or lost on close."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import uvicorn

from cracker.http_protocol import CoalescingHttpToolsProtocol, CoalescingTransport


class Recording:
    """The part of a transport CoalescingTransport calls, recording what reaches it."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.events.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.events.append("close")
        self.closing = True

    def get_extra_info(self, name: str) -> str:
        return f"extra {name}"


async def test_writes_in_one_turn_go_out_as_one_when_it_ends() -> None:
    recording = Recording()
    transport = CoalescingTransport(recording, asyncio.get_running_loop())  # type: ignore[arg-type]
    transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
    transport.write(memoryview(b"{}"))
    assert recording.events == []
    await asyncio.sleep(0)
    assert recording.events == [b"HTTP/1.1 200 OK\r\n\r\n{}"]
    transport.write(b"next")
    await asyncio.sleep(0)
    assert recording.events[-1] == b"next"
    assert transport.get_extra_info("peername") == "extra peername"


async def test_close_sends_what_was_written_first() -> None:
    recording = Recording()
    transport = CoalescingTransport(recording, asyncio.get_running_loop())  # type: ignore[arg-type]
    transport.write(b"headers")
    transport.write(b"body")
    transport.close()
    await asyncio.sleep(0)  # the flush scheduled for the turn's end finds nothing left
    assert recording.events == [b"headersbody", "close"]


async def test_a_large_write_goes_out_at_once() -> None:
    recording = Recording()
    transport = CoalescingTransport(recording, asyncio.get_running_loop())  # type: ignore[arg-type]
    transport.write(b"h")
    transport.write(b"x" * 70_000)
    assert recording.events == [b"h" + b"x" * 70_000]


async def test_uvicorn_serves_with_it_keep_alive_and_close() -> None:
    """A real uvicorn server with the protocol: answers whole, several on one connection, and an
    answer that closes the connection arrives before the close."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = scope["path"].encode() * 1000
        headers = [(b"content-length", b"%d" % len(body))]
        if scope["path"] == "/close":
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    config = uvicorn.Config(app, host="127.0.0.1", port=0, http=CoalescingHttpToolsProtocol, log_level="warning",
                            lifespan="off")
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    for _ in range(500):  # uvicorn has no event for "listening"
        if server.started:
            break
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            answers = [await client.get(path) for path in ("/a", "/bb", "/close")]
        assert [answer.content for answer in answers] == [b"/a" * 1000, b"/bb" * 1000, b"/close" * 1000]
        assert answers[2].headers["connection"] == "close"
    finally:
        server.should_exit = True
        await serving
