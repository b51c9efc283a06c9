"""A clock the test moves: lease expiry, heartbeats and the reaper without waiting on the wall clock."""

from __future__ import annotations

import time


class ManualClock:
    """Epoch seconds that stand still until ``advance``: hand it to ``create_app(clock=...)``
    (``api_factory(clock=...)``) and the task, worker and capacity services read it instead of
    ``time.time()``. It starts at the wall clock so that stored times look like real ones."""

    def __init__(self, start: float | None = None) -> None:
        self._now = time.time() if start is None else start

    def __call__(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock does not go back")
        self._now += seconds
