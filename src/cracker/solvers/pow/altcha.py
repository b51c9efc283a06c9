"""``altcha``: ALTCHA v1 (find the secret number) and v2 (key-derivation counters)."""

from __future__ import annotations

import base64
import time
import urllib.parse
from typing import Any, ClassVar, Final

from cracker.domain.errors import TaskRejected
from cracker.domain.pow_challenges import (
    ALTCHA_V1_MAX_NUMBER,
    ALTCHA_V2_MAX_COUNTERS,
    AltchaTask,
    AltchaV1Challenge,
    AltchaV2Challenge,
)
from cracker.solvers.base import Solution, SolveJob
from cracker.solvers.pow._common import PowSolver, check_deadline, compact_json, elapsed_ms, sha_chunk

#: v1: the most hashes one task spends (numbers 0 .. maxnumber, maxnumber at most 10**9).
MAX_ATTEMPTS: Final = ALTCHA_V1_MAX_NUMBER + 1
#: v2: the most key derivations one task spends (counters 0 .. 999,999; fewer for costly ones,
#: see ``AltchaV2Parameters.counters``).
MAX_V2_COUNTERS: Final = ALTCHA_V2_MAX_COUNTERS

_HASH_NAMES: Final = {"SHA-1": "sha1", "SHA-256": "sha256", "SHA-384": "sha384", "SHA-512": "sha512"}
# A chunk of counters is sized for about 50 ms of one core (at least one derivation).
_KDF_CHUNK_UNITS: Final = 125_000


def _v1_expires(salt: str) -> float | None:
    """``expires`` (unix seconds) from the query part a v1 salt may carry."""
    if "?" not in salt:
        return None
    values = urllib.parse.parse_qs(salt.split("?", 1)[1]).get("expires")
    try:
        return float(values[0]) if values else None
    except ValueError:
        return None


def _reject_code_challenge(code_challenge: dict[str, Any] | None) -> None:
    if code_challenge is not None:
        raise TaskRejected(
            "unsupported_challenge",
            "this ALTCHA challenge carries a human code challenge (codeChallenge), not only proof of work",
        )


def _b64_json(value: Any) -> str:
    return base64.b64encode(compact_json(value).encode()).decode()


class AltchaSolver(PowSolver[AltchaTask]):
    """Solves ALTCHA v1 and v2 challenges; ``token`` is the widget's base64 payload.

    v1 solution: ``token``, ``number``, ``took_ms``. v2 solution: ``token``, ``counter``,
    ``derived_key`` (hex), ``took_ms``.
    """

    name: ClassVar[str] = "altcha"
    types = frozenset({"altcha"})
    model = AltchaTask

    async def solve(self, job: SolveJob) -> Solution:
        task = self.parse(job)
        check_deadline(job)
        if isinstance(task.challenge, AltchaV2Challenge):
            return await self._solve_v2(task.challenge, job)
        return await self._solve_v1(task.challenge, job)

    async def _solve_v1(self, challenge: AltchaV1Challenge, job: SolveJob) -> Solution:
        _reject_code_challenge(challenge.codeChallenge)
        expires = _v1_expires(challenge.salt)
        if expires is not None and expires < time.time():
            raise TaskRejected("challenge_expired", f"the ALTCHA challenge expired at {expires:.0f} (unix s)")
        began = time.monotonic()
        hit = await self._engine.search(
            "decimal",
            (
                _HASH_NAMES[challenge.algorithm],
                challenge.salt.encode(),
                "eq",
                bytes.fromhex(challenge.challenge),
            ),
            start=0,
            stop=challenge.max_number + 1,
            chunk=sha_chunk(self._engine),
            deadline=job.deadline,
            task=job.task_id,
            account=job.account_id,
        )
        if hit is None:
            raise TaskRejected("no_solution", f"no number in 0..{challenge.max_number} hashes to the ALTCHA challenge")
        took = elapsed_ms(began)
        payload = {
            "algorithm": challenge.algorithm,
            "challenge": challenge.challenge,
            "number": hit.nonce,
            "salt": challenge.salt,
            "signature": challenge.signature,
            "took": took,
        }
        return {"token": _b64_json(payload), "number": hit.nonce, "took_ms": took}

    async def _solve_v2(self, challenge: AltchaV2Challenge, job: SolveJob) -> Solution:
        _reject_code_challenge(challenge.codeChallenge)
        params = challenge.parameters
        if params.expiresAt is not None and params.expiresAt < time.time():
            raise TaskRejected("challenge_expired", f"the ALTCHA challenge expired at {params.expiresAt} (unix s)")
        chunk = max(1, min(4096, _KDF_CHUNK_UNITS // params.step_units))
        counters = params.counters
        began = time.monotonic()
        hit = await self._engine.search(
            "kdf",
            (
                (params.algorithm, params.cost, params.keyLength, params.memoryCost, params.parallelism),
                bytes.fromhex(params.nonce),
                bytes.fromhex(params.salt),
                params.keyPrefix.lower(),
            ),
            start=0,
            stop=counters,
            chunk=chunk,
            deadline=job.deadline,
            task=job.task_id,
            account=job.account_id,
        )
        if hit is None:
            raise TaskRejected(
                "no_solution", f"no counter below {counters} derives a key starting with {params.keyPrefix}"
            )
        took = elapsed_ms(began)
        served = challenge.model_dump(mode="json")
        payload = {
            "challenge": {key: served[key] for key in ("parameters", "signature") if key in served},
            "solution": {"counter": hit.nonce, "derivedKey": hit.value.hex(), "time": took},
        }
        return {"token": _b64_json(payload), "counter": hit.nonce, "derived_key": hit.value.hex(), "took_ms": took}
