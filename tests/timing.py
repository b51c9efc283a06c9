"""One factor for every time bound in the tests, for slow or loaded machines.

``CRACKER_TEST_TIME_SCALE=3 bash scripts/test.sh`` gives every upper bound on a duration (and every
wait for something to happen) three times as long. Lower bounds (a retry must not come sooner than
its schedule) are never scaled: slowness cannot break them.
"""

from __future__ import annotations

import os

SCALE = float(os.environ.get("CRACKER_TEST_TIME_SCALE", "1"))


def within(seconds: float) -> float:
    """An upper bound on a duration, scaled for this machine."""
    return seconds * SCALE
