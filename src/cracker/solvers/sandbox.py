"""The sandbox solver: answers exactly the vendors' documented test keys, with their test tokens.

Real site keys are never solved here: such tasks go to attached worker pools.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from cracker.domain.errors import TaskRejected
from cracker.solvers.base import Solution, SolveJob

TURNSTILE_DUMMY_TOKEN = "XXXX.DUMMY.TOKEN.XXXX"  # noqa: S105 - Cloudflare's documented test token
#: Cloudflare's documented test keys: site key -> passes?
TURNSTILE_TEST_KEYS: dict[str, bool] = {
    "1x00000000000000000000AA": True,
    "1x00000000000000000000BB": True,
    "2x00000000000000000000AB": False,
    "2x00000000000000000000BB": False,
    "3x00000000000000000000FF": True,
}
#: hCaptcha's documented test site keys -> the response token each one yields.
HCAPTCHA_TEST_KEYS: dict[str, str] = {
    "10000000-ffff-ffff-ffff-000000000001": "10000000-aaaa-bbbb-cccc-000000000001",
    "20000000-ffff-ffff-ffff-000000000002": "20000000-aaaa-bbbb-cccc-000000000002",
    "30000000-ffff-ffff-ffff-000000000003": "30000000-aaaa-bbbb-cccc-000000000003",
}
#: Google's documented reCAPTCHA v2 test site key; its test secret accepts any non-empty token.
RECAPTCHA_V2_TEST_KEY = "6LeIxAcTAAAAAJcZVRqyHh71UMIEGNQ_MXjiZKhI"


class SandboxSolver:
    name = "sandbox"
    types = frozenset({"turnstile", "hcaptcha", "recaptcha-v2"})

    def accepts(self, task_type: str, params: Mapping[str, Any]) -> bool:
        site_key = params.get("site_key")
        if task_type == "turnstile":
            return site_key in TURNSTILE_TEST_KEYS
        if task_type == "hcaptcha":
            return site_key in HCAPTCHA_TEST_KEYS
        if task_type == "recaptcha-v2":
            return site_key == RECAPTCHA_V2_TEST_KEY
        return False

    async def solve(self, job: SolveJob) -> Solution:
        site_key = job.params.get("site_key")
        if job.type == "turnstile" and site_key in TURNSTILE_TEST_KEYS:
            if not TURNSTILE_TEST_KEYS[site_key]:
                raise TaskRejected("challenge_error", "Turnstile test key that always fails")
            return {"token": TURNSTILE_DUMMY_TOKEN}
        if job.type == "hcaptcha" and site_key in HCAPTCHA_TEST_KEYS:
            return {"token": HCAPTCHA_TEST_KEYS[site_key]}
        if job.type == "recaptcha-v2" and site_key == RECAPTCHA_V2_TEST_KEY:
            # Any non-empty token passes Google's test secret; make it look like one.
            return {"token": "03" + secrets.token_urlsafe(48)}
        raise TaskRejected("invalid_params", "The sandbox solves only the vendors' documented test keys")
