"""uvicorn's HTTP protocol with a response's writes coalesced: one ``send`` to the socket, not two.

uvicorn writes a response's status line and headers to the transport when the app sends
``http.response.start``, and the body when it sends ``http.response.body``: two writes, each a
``send`` system call, and on a connection to this machine (a proxy beside the service, a
benchmark) each also runs the receiving side's TCP processing. For a small JSON answer those two
calls were the largest part of a request's CPU time (``bench/create_profile.py --poll --gil``:
half of the samples, the two ``transport.write`` lines).

``CoalescingTransport`` stands between uvicorn and the socket's transport: what is written within
one turn of the event loop goes out in one ``write`` when that turn ends (``call_soon``), so a
response sent in one go, as every JSON answer is, costs one system call and one TCP segment. The
flush is a ready callback, so the loop's next turn runs it without blocking in its I/O poll: the
answer waits only for the callbacks already queued ahead of it. Large writes (a streamed body) go
out at once, so flow control still sees the transport's real buffer.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

#: Buffered bytes beyond which a write goes out at once rather than at the end of the loop's turn.
_FLUSH_AT = 64 * 1024


class CoalescingTransport:
    """An ``asyncio.Transport`` whose writes within one event-loop turn go out as one."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._buffer: list[bytes] = []
        self._size = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._buffer:
            self._loop.call_soon(self.flush)
        self._buffer.append(bytes(data))
        self._size += len(data)
        if self._size >= _FLUSH_AT:
            self.flush()

    def flush(self) -> None:
        if not self._buffer:
            return
        data = self._buffer[0] if len(self._buffer) == 1 else b"".join(self._buffer)
        self._buffer.clear()
        self._size = 0
        if not self._transport.is_closing():
            self._transport.write(data)

    def writelines(self, chunks: Any) -> None:
        for chunk in chunks:
            self.write(chunk)

    def close(self) -> None:
        # What was written before the close goes out before it, as with the transport itself.
        self.flush()
        self._transport.close()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def abort(self) -> None:
        self._buffer.clear()
        self._size = 0
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        # Everything else (is_closing, get_extra_info, pause_reading, set_protocol...) as the transport.
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, writing through a ``CoalescingTransport``."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # After uvicorn read the addresses and set up flow control on the transport itself.
        self.transport = CoalescingTransport(transport, self.loop)  # type: ignore[assignment]
