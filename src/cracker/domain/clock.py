"""Time and ids: RFC 3339 UTC with milliseconds on the wire, UUIDv7 ids."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import uuid_utils


def now() -> float:
    """Wall-clock seconds; every stored time is this float (epoch seconds)."""
    return time.time()


def rfc3339(ts: float | None) -> str | None:
    if ts is None:
        return None
    moment = datetime.fromtimestamp(ts, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def new_id() -> str:
    """A time-ordered UUIDv7 string, for task ids and request ids."""
    return str(uuid_utils.uuid7())
