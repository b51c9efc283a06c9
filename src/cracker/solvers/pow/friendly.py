"""``friendly-captcha``: Friendly Captcha v1 puzzles (BLAKE2b-256 below a threshold)."""

from __future__ import annotations

import base64
import time
from typing import ClassVar, Final

from cracker.domain.errors import TaskRejected
from cracker.domain.pow_challenges import FRIENDLY_MAX_ATTEMPTS, FriendlyCaptchaTask, friendly_threshold
from cracker.solvers.base import Solution, SolveJob
from cracker.solvers.pow._common import PowSolver, all_hits, check_deadline, elapsed_ms

#: The most BLAKE2b hashes one task spends over all its solutions (2**32 // n each).
MAX_ATTEMPTS: Final = FRIENDLY_MAX_ATTEMPTS
#: Diagnostics byte 0: the widget's solver kind (1 = JavaScript fallback, 2 = WebAssembly); this
#: server reports 2, the kind every current browser runs.
SOLVER_KIND: Final = 2
BLOCK_SIZE: Final = 128
_CHUNK: Final = 1 << 16  # pure-Python BLAKE2b: about 1 M/s per core


def solver_blocks(buffer: bytes, count: int) -> list[bytes]:
    """The widget's ``getPuzzleSolverInputs``: the buffer in a zeroed block, byte 120 = index."""
    blocks = []
    for index in range(count):
        block = bytearray(BLOCK_SIZE)
        block[: len(buffer)] = buffer
        block[120] = index
        blocks.append(bytes(block))
    return blocks


def diagnostics(seconds: float) -> bytes:
    return bytes([SOLVER_KIND]) + min(int(seconds), 0xFFFF).to_bytes(2, "big")


class FriendlyCaptchaSolver(PowSolver[FriendlyCaptchaTask]):
    """Solves Friendly Captcha v1 puzzles; ``token`` is the widget's solution string.

    Solution: ``token`` = ``<signature>.<puzzle base64>.<solutions base64>.<diagnostics base64>``,
    plus ``nonces`` (the counter of each solution) and ``took_ms``.
    """

    name: ClassVar[str] = "friendly-captcha"
    types = frozenset({"friendly-captcha"})
    model = FriendlyCaptchaTask

    async def solve(self, job: SolveJob) -> Solution:
        task = self.parse(job)
        check_deadline(job)
        signature, encoded = task.puzzle.split(".")
        buffer = base64.b64decode(encoded)
        count, threshold = buffer[14], friendly_threshold(buffer[15])
        per_solution = MAX_ATTEMPTS // count
        expected = 2**32 // max(threshold, 1)
        parallel = 1 if 4 * expected <= _CHUNK else None
        began = time.monotonic()
        hits = await all_hits(
            [
                self._engine.search(
                    "blake2b",
                    (block, threshold),
                    start=0,
                    stop=per_solution,
                    chunk=_CHUNK,
                    deadline=job.deadline,
                    parallel=parallel,
                    task=job.task_id,
            account=job.account_id,
                )
                for block in solver_blocks(buffer, count)
            ],
            lambda index: TaskRejected(
                "no_solution", f"Friendly Captcha solution {index}: none in {per_solution} tries"
            ),
        )
        solutions = b"".join(hit.value for hit in hits)
        nonces = [hit.nonce for hit in hits]
        took = time.monotonic() - began
        token = ".".join(
            (signature, encoded, base64.b64encode(solutions).decode(), base64.b64encode(diagnostics(took)).decode())
        )
        return {"token": token, "nonces": nonces, "took_ms": elapsed_ms(began)}
