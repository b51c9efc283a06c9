"""Checking a webhook's signature on the receiving side."""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "X-Cracker-Signature"


def verify_webhook(
    secret: str, body: bytes, signature: str, *, tolerance_s: float = 300.0, now: float | None = None
) -> bool:
    """True when ``signature`` (the X-Cracker-Signature header) signs this exact ``body`` with the
    account's secret and is at most ``tolerance_s`` old (older ones may be replays)."""
    try:
        parts = dict(item.split("=", 1) for item in signature.split(","))
        timestamp = int(parts["t"])
        received = parts["v1"]
    except (ValueError, KeyError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        return False
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, received)
