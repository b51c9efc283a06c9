"""Webhooks: the signature scheme and the retry schedule (allowed destinations: ``domain.callbacks``).

Signature (documented in docs/webhooks.md, checked by ``cracker.sdk.verify_webhook``):
``X-Cracker-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>``.
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


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


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
