"""Webhooks: the signature scheme and the retry schedule (allowed destinations: ``domain.callbacks``).

Signature (documented in docs/webhooks.md, checked by ``cracker.sdk.verify_webhook``):
``X-Cracker-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>``, with a
second ``v1=`` made with the previous secret while a rotation's overlap lasts.
Signing the timestamp with the body lets receivers refuse replays older than a few minutes.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

SIGNATURE_HEADER = "X-Cracker-Signature"
#: Retry for a day: quick at first (a receiver that blinked), then hourly.
RETRY_FOR_S = 24 * 3600
_BACKOFF_S = (5, 15, 60, 300, 900, 1800, 3600)


def new_secret() -> str:
    return "whsec_" + secrets.token_hex(24)


def sign(secret: str, timestamp: int, body: bytes, *, previous: str | None = None) -> str:
    """The signature header's value; during a rotation's overlap ``previous`` signs too (a second
    ``v1=``), so a receiver still holding the old secret keeps verifying until it switches."""
    macs = [hmac.new(key.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
            for key in (secret, previous) if key is not None]
    return ",".join([f"t={timestamp}", *(f"v1={mac}" for mac in macs)])


@dataclass(frozen=True, slots=True)
class SigningSecrets:
    """An account's webhook secret and, during a rotation's overlap, the one it replaced."""

    current: str
    previous: str | None = None
    previous_until: float | None = None


def next_attempt_delay(attempts_made: int) -> float:
    """Seconds to wait after the ``attempts_made``-th failed attempt."""
    return float(_BACKOFF_S[min(attempts_made, len(_BACKOFF_S)) - 1]) if attempts_made > 0 else 0.0


@dataclass(frozen=True, slots=True)
class DeliveryAttempt:
    delivery_id: str
    attempt: int
    at: float
    status_code: int | None
    error: str | None
    duration_ms: int


@dataclass(frozen=True, slots=True)
class DueDelivery:
    id: str
    task_id: str
    account_id: str
    url: str
    attempts: int
    created_at: float
