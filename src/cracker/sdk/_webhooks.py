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
    account's secret and is at most ``tolerance_s`` old (older ones may be replays).

    While a secret rotation's overlap lasts the header carries two ``v1=`` values, one per secret:
    either one matching is enough, so a receiver can hold the old or the new secret.
    """
    timestamps: list[str] = []
    received: list[str] = []
    for item in signature.split(","):
        name, sep, value = item.strip().partition("=")
        if not sep:
            return False
        if name == "t":
            timestamps.append(value)
        elif name == "v1":
            received.append(value)
    if len(timestamps) != 1 or not received:
        return False
    try:
        timestamp = int(timestamps[0])
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        return False
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    # Compare with every value (no early exit), so timing says nothing about which one matched.
    matches = [hmac.compare_digest(expected, value) for value in received]
    return any(matches)
