"""``pow-sha256``: Anubis-style leading-zero SHA-256 proof of work."""

from __future__ import annotations

import time
from typing import ClassVar, Final

from cracker.domain.errors import TaskRejected
from cracker.domain.pow_challenges import POW_SHA256_MAX_ATTEMPTS, PowSha256Task
from cracker.solvers.base import Solution, SolveJob
from cracker.solvers.pow._common import PowSolver, check_deadline, compact_json, elapsed_ms, sha_chunk

#: The most SHA-256 hashes one task spends: nonces 0 .. 2**32 - 1, then ``no_solution``.
MAX_ATTEMPTS: Final = POW_SHA256_MAX_ATTEMPTS


class PowSha256Solver(PowSolver[PowSha256Task]):
    """Finds a decimal nonce with ``hex(SHA-256(data + nonce))`` starting with ``difficulty`` zeros.

    Solution: ``token`` = ``{"nonce": n, "hash": hex}`` as compact JSON, plus ``nonce``, ``hash``
    and ``took_ms``.
    """

    name: ClassVar[str] = "pow-sha256"
    types = frozenset({"pow-sha256"})
    model = PowSha256Task

    async def solve(self, job: SolveJob) -> Solution:
        task = self.parse(job)
        check_deadline(job)
        began = time.monotonic()
        hit = await self._engine.search(
            "decimal",
            ("sha256", task.data.encode(), "hexprefix", "0" * task.difficulty),
            start=0,
            stop=MAX_ATTEMPTS,
            chunk=sha_chunk(self._engine),
            deadline=job.deadline,
            task=job.task_id,
            account=job.account_id,
        )
        if hit is None:
            raise TaskRejected("no_solution", f"no nonce below {MAX_ATTEMPTS} gives {task.difficulty} zeros")
        digest = hit.value.hex()
        return {
            "token": compact_json({"nonce": hit.nonce, "hash": digest}),
            "nonce": hit.nonce,
            "hash": digest,
            "took_ms": elapsed_ms(began),
        }
