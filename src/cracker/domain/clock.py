"""Time and ids: RFC 3339 UTC with milliseconds on the wire, UUIDv7 ids."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable

import uuid_utils

#: What a service reads the time from: ``now`` in production; tests hand the composition root a
#: clock they move themselves (lease expiry without waiting on the wall clock).
Clock = Callable[[], float]


def now() -> float:
    """Wall-clock seconds; every stored time is this float (epoch seconds)."""
    return time.time()


def rfc3339(ts: float | None) -> str | None:
    """``2026-11-28T12:00:00.123Z``. Hand-formatted: it runs several times per envelope, and
    datetime + strftime cost four times as much."""
    if ts is None:
        return None
    millis = int(ts * 1000)
    return f"{_seconds(millis // 1000)}.{millis % 1000:03d}Z"


@functools.lru_cache(maxsize=4096)
def _seconds(epoch_s: int) -> str:
    # Cached: a polled task's timestamps are formatted again on every poll.
    t = time.gmtime(epoch_s)
    return f"{t[0]:04d}-{t[1]:02d}-{t[2]:02d}T{t[3]:02d}:{t[4]:02d}:{t[5]:02d}"


def new_id() -> str:
    """A time-ordered UUIDv7 string, for task ids and request ids."""
    return str(uuid_utils.uuid7())
