"""Token buckets (per account, per client address), in process memory."""

from __future__ import annotations

import math
import time


class RateLimiter:
    """``rate`` tokens per second up to ``burst``; one token per request.

    Buckets live in this process: with several API processes each enforces the limit on its own
    share of the traffic (``create_app`` gives each ``1 / api_processes`` of the setting).
    """

    _MAX_KEYS = 100_000

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: dict[str, tuple[float, float]] = {}

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def peek(self, key: str) -> int | None:
        """Like ``acquire`` without taking the token: None if one is there."""
        if not self.enabled or key not in self._buckets:
            return None
        tokens, last = self._buckets[key]
        tokens = min(float(self.burst), tokens + (time.monotonic() - last) * self.rate)
        return None if tokens >= 1.0 else max(1, math.ceil((1.0 - tokens) / self.rate))

    def charge(self, key: str, cost: float) -> None:
        """Take ``cost`` more tokens for a request ``acquire`` admitted (a batch's further items),
        into debt if need be: later requests wait it out, and a batch larger than the burst is
        not refused forever."""
        if not self.enabled or cost <= 0:
            return
        now = time.monotonic()
        tokens, last = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        self._buckets[key] = (tokens - cost, now)

    def acquire(self, key: str) -> int | None:
        """Take a token; None if granted, else the whole seconds to wait (for Retry-After)."""
        if not self.enabled:
            return None
        now = time.monotonic()
        tokens, last = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        if tokens >= 1.0:
            if len(self._buckets) >= self._MAX_KEYS and key not in self._buckets:
                self._buckets.clear()  # bounded memory; at worst a burst is forgiven
            self._buckets[key] = (tokens - 1.0, now)
            return None
        self._buckets[key] = (tokens, now)
        return max(1, math.ceil((1.0 - tokens) / self.rate))
