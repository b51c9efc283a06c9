"""``mcaptcha``: mCaptcha's SHA-256 proof of work (``pow_sha256``)."""

from __future__ import annotations

import time
from typing import ClassVar, Final

from cracker.domain.errors import TaskRejected
from cracker.domain.pow_challenges import MCAPTCHA_MAX_ATTEMPTS, McaptchaConfig, McaptchaTask
from cracker.solvers.base import Solution, SolveJob
from cracker.solvers.pow._common import PowSolver, check_deadline, compact_json, elapsed_ms, sha_chunk

#: The most SHA-256 hashes one task spends (nonces 1 .. 2**32).
MAX_ATTEMPTS: Final = MCAPTCHA_MAX_ATTEMPTS

U128_MAX: Final = 2**128 - 1


def prefix(config: McaptchaConfig) -> bytes:
    """``salt || uint64_le(len(string)) || string``: the bincode encoding mCaptcha hashes."""
    text = config.string.encode()
    return config.salt.encode() + len(text).to_bytes(8, "little") + text


def threshold(difficulty_factor: int) -> int:
    return U128_MAX - U128_MAX // difficulty_factor


def score(digest: bytes) -> int:
    """The big-endian u128 of a digest's first 16 bytes."""
    return int.from_bytes(digest[:16], "big")


class McaptchaSolver(PowSolver[McaptchaTask]):
    """Solves mCaptcha PoW configs; ``token`` is the ``POST /api/v1/pow/verify`` body as compact JSON.

    Solution: ``token`` = ``{"string", "result", "nonce", "key"}``, plus ``nonce``, ``result``
    (decimal string) and ``took_ms``.
    """

    name: ClassVar[str] = "mcaptcha"
    types = frozenset({"mcaptcha"})
    model = McaptchaTask

    async def solve(self, job: SolveJob) -> Solution:
        task = self.parse(job)
        check_deadline(job)
        config = task.config
        began = time.monotonic()
        hit = await self._engine.search(
            "decimal",
            ("sha256", prefix(config), "ge16", threshold(config.difficulty_factor).to_bytes(16, "big")),
            start=1,
            stop=MAX_ATTEMPTS + 1,
            chunk=sha_chunk(self._engine),
            deadline=job.deadline,
            task=job.task_id,
            account=job.account_id,
        )
        if hit is None:
            raise TaskRejected("no_solution", f"no nonce up to {MAX_ATTEMPTS} reaches the difficulty")
        result = str(score(hit.value))
        body = {"string": config.string, "result": result, "nonce": hit.nonce, "key": task.site_key}
        return {"token": compact_json(body), "nonce": hit.nonce, "result": result, "took_ms": elapsed_ms(began)}
