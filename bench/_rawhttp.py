"""A minimal keep-alive HTTP/1.1 client for load generation: the benchmark measures the server,
so the client must cost as little CPU as possible on the same 2 cores (httpx costs ~5x more)."""

from __future__ import annotations

import asyncio

import orjson


class Connection:
    def __init__(self, host: str, port: int, api_key: str) -> None:
        self.host, self.port = host, port
        self._auth = f"x-solvium-auth: {api_key}\r\n".encode()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._reader is None or self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        return self._reader, self._writer

    async def request(self, method: str, path: str, body: object | None = None) -> tuple[int, dict[str, object]]:
        reader, writer = await self._open()
        payload = orjson.dumps(body) if body is not None else b""
        head = (
            f"{method} {path} HTTP/1.1\r\nhost: {self.host}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(payload)}\r\n"
        ).encode()
        writer.write(head + self._auth + b"\r\n" + payload)
        status_line = await reader.readline()
        status = int(status_line.split(b" ", 2)[1])
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        data = await reader.readexactly(length)
        return status, orjson.loads(data) if data else {}

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._reader = self._writer = None
