"""LISTEN/NOTIFY on PostgreSQL: one dedicated asyncpg connection per process.

It listens on the service's channels and sends the application's notifications, coalesced: every
notification asked for while the previous NOTIFY was in flight, or within ``MIN_INTERVAL_S`` of
it, goes out in one ``pg_notify`` per channel, with the payloads joined by commas. Callers
notify after their transaction committed, never from a trigger, so a wake-up never announces
work that a reader cannot see yet.

Notifications can be lost (the connection drops, the server restarts): the owner gets
``on_reconnect`` after every reconnection and must treat it as "anything may have happened";
every waiter in the service also polls.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from cracker.store.engines import normalise_url

log = logging.getLogger("cracker.notify")

#: pg_notify's payload limit is 8000 bytes; stay clear of it.
_MAX_PAYLOAD = 7000
_RECONNECT_DELAYS = (0.1, 0.25, 0.5, 1.0, 2.0)
#: Two NOTIFYs on one connection are at least this far apart. The first after a quiet spell goes
#: at once (no added latency on an idle queue); under load, what arrives within the interval goes
#: out together. Every NOTIFY wakes every listening process (each worker then runs a claim), so
#: at 1,000 tasks/s sending one per event-loop turn cost the server more than the creates did.
MIN_INTERVAL_S = 0.003


def asyncpg_dsn(url: str) -> str:
    """The plain ``postgresql://`` DSN asyncpg takes, from any URL the store accepts."""
    return make_url(normalise_url(url)).set(drivername="postgresql").render_as_string(hide_password=False)


def _chunks(payloads: list[str]) -> list[str]:
    out: list[str] = []
    current: list[str] = []
    size = 0
    for payload in payloads:
        if current and size + len(payload) + 1 > _MAX_PAYLOAD:
            out.append(",".join(current))
            current, size = [], 0
        current.append(payload)
        size += len(payload) + 1
    if current:
        out.append(",".join(current))
    return out


class PgNotifyChannel:
    def __init__(
        self,
        url: str,
        handlers: Mapping[str, Callable[[str], None]],
        on_reconnect: Callable[[], None],
        *,
        connect_timeout_s: float = 5.0,
    ) -> None:
        self._dsn = asyncpg_dsn(url)
        self._connect_timeout_s = connect_timeout_s
        self._handlers = dict(handlers)
        self._on_reconnect = on_reconnect
        self._conn: Any = None
        self._own_pid: int | None = None
        self._pending: dict[str, list[str]] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._last_sent = 0.0

    async def start(self) -> None:
        await self._connect()
        self._task = asyncio.create_task(self._run(), name="cracker-notify")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._drop()

    def notify(self, channel: str, payload: str = "") -> None:
        """Queue a notification; sent by the flusher right after the current event-loop turn."""
        queued = self._pending.setdefault(channel, [])
        # An empty payload ("there is work") needs saying once per flush, not once per task.
        if payload or not queued:
            queued.append(payload)
        self._wake.set()

    async def _connect(self) -> None:
        conn = await asyncpg.connect(self._dsn, timeout=self._connect_timeout_s)
        try:
            for channel in self._handlers:
                await conn.add_listener(channel, self._dispatch)
        except BaseException:
            conn.terminate()
            raise
        # A connection that dies while idle wakes the flusher, which reconnects.
        conn.add_termination_listener(lambda _conn: self._wake.set())
        self._conn = conn
        self._own_pid = conn.get_server_pid()

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await asyncio.wait_for(conn.close(), 2)
            except Exception:  # already broken: nothing to close cleanly
                conn.terminate()

    def _dispatch(self, _conn: Any, pid: int, channel: str, payload: str) -> None:
        if pid == self._own_pid:
            return  # our own notification: local waiters were woken when it was queued
        handler = self._handlers.get(channel)
        if handler is not None:
            handler(payload)

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            hold_off = self._last_sent + MIN_INTERVAL_S - time.monotonic()
            if hold_off > 0:
                await asyncio.sleep(hold_off)
            self._wake.clear()
            self._last_sent = time.monotonic()
            pending, self._pending = self._pending, {}
            try:
                if self._conn is None or self._conn.is_closed():
                    raise ConnectionError("notification connection lost")
                for channel, payloads in pending.items():
                    for chunk in _chunks(payloads) if any(payloads) else [""]:
                        await self._conn.execute("SELECT pg_notify($1, $2)", channel, chunk)
            except Exception:
                # Whatever broke it (a restart, a refusal, a cut): what was pending is dropped (its
                # receivers poll) and the flusher lives on to reconnect, which matters more.
                log.warning("notification connection lost; reconnecting")
                await self._reconnect()

    async def _reconnect(self) -> None:
        await self._drop()
        attempt = 0
        while True:
            try:
                await self._connect()
            except Exception:  # refused, starting up, timed out: the database comes back, so do we
                await asyncio.sleep(_RECONNECT_DELAYS[min(attempt, len(_RECONNECT_DELAYS) - 1)])
                attempt += 1
                continue
            log.warning("notification connection re-established after %d failed attempt(s)", attempt)
            self._on_reconnect()
            return
