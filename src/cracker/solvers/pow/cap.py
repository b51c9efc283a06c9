"""``cap``: Cap (cap.js) format 1: ``c`` SHA-256 sub-challenges derived from the token."""

from __future__ import annotations

import time
from typing import ClassVar, Final

from cracker.domain.errors import TaskRejected
from cracker.domain.pow_challenges import CAP_MAX_ATTEMPTS, CapConfig, CapTask
from cracker.solvers.base import Solution, SolveJob
from cracker.solvers.pow._common import PowSolver, all_hits, check_deadline, compact_json, elapsed_ms, sha_chunk

#: The most SHA-256 hashes one task spends over all its sub-challenges (2**32 // c each).
MAX_ATTEMPTS: Final = CAP_MAX_ATTEMPTS

_FNV_OFFSET: Final = 2166136261
_FNV_PRIME: Final = 16777619
_MASK32: Final = 0xFFFFFFFF


def _fnv1a(text: str, state: int = _FNV_OFFSET) -> int:
    """FNV-1a 32-bit over UTF-16 code units, continuing from ``state`` (the hash streams)."""
    units = text.encode("utf-16-le", "surrogatepass")
    for i in range(0, len(units), 2):
        state ^= units[i] | units[i + 1] << 8
        state = (state * _FNV_PRIME) & _MASK32
    return state


def _xorshift_hex(state: int, length: int) -> str:
    out = []
    produced = 0
    while produced < length:
        state ^= (state << 13) & _MASK32
        state ^= state >> 17
        state ^= (state << 5) & _MASK32
        out.append(f"{state:08x}")
        produced += 8
    return "".join(out)[:length]


def prng(seed: str, length: int) -> str:
    """Cap's deterministic hex stream: FNV-1a over UTF-16 code units, then xorshift32."""
    return _xorshift_hex(_fnv1a(seed), length)


def sub_challenges(token: str, config: CapConfig) -> list[tuple[str, str]]:
    """``(salt_i, target_i)`` for i = 1..c, as the widget and the server derive them.

    The token's hash state is computed once and continued per index: a long token costs once,
    not 2c times (the parent does this work itself, on the event loop).
    """
    base = _fnv1a(token)
    return [
        (_xorshift_hex(_fnv1a(str(i), base), config.s), _xorshift_hex(_fnv1a(f"{i}d", base), config.d))
        for i in range(1, config.c + 1)
    ]


class CapSolver(PowSolver[CapTask]):
    """Solves Cap format-1 challenges; ``token`` is the ``POST .../redeem`` body as compact JSON.

    Solution: ``token`` = ``{"token": <challenge token>, "solutions": [n1, ..., nc]}``, plus
    ``solutions`` and ``took_ms``.
    """

    name: ClassVar[str] = "cap"
    types = frozenset({"cap"})
    model = CapTask

    async def solve(self, job: SolveJob) -> Solution:
        answer = self.parse(job).challenge
        check_deadline(job)
        if isinstance(answer.challenge, list) or (answer.format is not None and answer.format != 1):
            raise TaskRejected(
                "unsupported_challenge", "Cap format 2 challenges (sha256-pow / rsw lists) are not supported"
            )
        if answer.instrumentation is not None:
            raise TaskRejected(
                "unsupported_challenge",
                "this Cap challenge carries an instrumentation (JavaScript) challenge, not only proof of work",
            )
        if answer.expires is not None and answer.expires < time.time() * 1000:
            raise TaskRejected("challenge_expired", "the Cap challenge expired (expires is in the past)")
        config = answer.challenge
        per_sub = MAX_ATTEMPTS // config.c
        expected = 16**config.d
        # Small sub-challenges run side by side, one chunk each (the pool stays full and each
        # finds its smallest nonce); a large one is split across every core.
        chunk = min(sha_chunk(self._engine), max(4096, 4 * expected))
        parallel = 1 if 4 * expected <= chunk else None
        began = time.monotonic()
        searches = [
            self._engine.search(
                "decimal",
                ("sha256", salt.encode(), "hexprefix", target),
                start=0,
                stop=per_sub,
                chunk=chunk,
                deadline=job.deadline,
                parallel=parallel,
                task=job.task_id,  # c sub-challenges, one task: one share of the pool
                account=job.account_id,
            )
            for salt, target in sub_challenges(answer.token, config)
        ]
        hits = await all_hits(
            searches,
            lambda index: TaskRejected("no_solution", f"Cap sub-challenge {index + 1}: no nonce below {per_sub}"),
        )
        solutions = [hit.nonce for hit in hits]
        return {
            "token": compact_json({"token": answer.token, "solutions": solutions}),
            "solutions": solutions,
            "took_ms": elapsed_ms(began),
        }
