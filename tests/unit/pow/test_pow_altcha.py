"""ALTCHA v1 and v2 solutions, proven with the official verifier (``altcha`` on PyPI)."""

from __future__ import annotations

import base64
import datetime
import json
import secrets
import time
from typing import Any

import altcha
import pytest

from cracker.domain.errors import TaskRejected
from cracker.domain.pow_challenges import AltchaTask
from cracker.solvers.base import Solution
from cracker.solvers.pow import AltchaSolver, PowEngine
from tests.timing import within

from .conftest import make_job


async def solve(engine: PowEngine, challenge: dict[str, Any], timeout: float = 30.0) -> Solution:
    return await AltchaSolver(engine).solve(make_job("altcha", AltchaTask, {"challenge": challenge}, timeout))


def v1_challenge(algorithm: str, max_number: int, key: str, **options: Any) -> dict[str, Any]:
    created = altcha.create_challenge_v1(
        altcha.ChallengeOptionsV1(algorithm=algorithm, max_number=max_number, hmac_key=key, **options)  # type: ignore[arg-type]
    )
    return created.to_dict()


@pytest.mark.parametrize("algorithm", ["SHA-1", "SHA-256", "SHA-512"])
async def test_v1_verified_by_official_library(engine: PowEngine, algorithm: str) -> None:
    key = secrets.token_hex(16)
    challenge = v1_challenge(algorithm, 20_000 + secrets.randbelow(80_000), key)
    solution = await solve(engine, challenge)
    assert altcha.verify_solution_v1(solution["token"], key) == (True, None)
    payload = json.loads(base64.b64decode(solution["token"]))
    assert set(payload) == {"algorithm", "challenge", "number", "salt", "signature", "took"}
    assert payload["number"] == solution["number"]


async def test_v1_lowercase_maxnumber_and_expiry_in_the_future(engine: PowEngine) -> None:
    key = secrets.token_hex(16)
    expires = datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=5)
    challenge = v1_challenge("SHA-256", 50_000, key, expires=expires)
    challenge["maxnumber"] = challenge.pop("maxNumber")
    solution = await solve(engine, challenge)
    assert altcha.verify_solution_v1(solution["token"], key, check_expires=True) == (True, None)


async def test_v1_sha384_checked_independently(python_engine: PowEngine) -> None:
    # The Python library has no SHA-384 for v1 (the JS one has): check the rule itself.
    import hashlib

    salt, number = secrets.token_hex(12) + "&", secrets.randbelow(5000)
    target = hashlib.sha384(f"{salt}{number}".encode()).hexdigest()
    challenge = {"algorithm": "SHA-384", "challenge": target, "salt": salt, "signature": "00", "maxnumber": 5000}
    solution = await solve(python_engine, challenge)
    assert solution["number"] == number


async def test_v1_expired_is_rejected_without_work(python_engine: PowEngine) -> None:
    expired = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=5)
    challenge = v1_challenge("SHA-256", 10**9, "k", expires=expired)
    with pytest.raises(TaskRejected) as caught:
        await solve(python_engine, challenge)
    assert caught.value.code == "challenge_expired"


async def test_v1_code_challenge_is_rejected(python_engine: PowEngine) -> None:
    challenge = v1_challenge("SHA-256", 1000, "k")
    challenge["codeChallenge"] = {"image": "data:image/png;base64,AAAA", "length": 6}
    with pytest.raises(TaskRejected) as caught:
        await solve(python_engine, challenge)
    assert caught.value.code == "unsupported_challenge"


async def test_v1_exhausted_range_is_no_solution_after_bounded_work(engine: PowEngine) -> None:
    # The secret number lies above the advertised range: every number in it is tried, then no more.
    challenge = v1_challenge("SHA-256", 200_000, "k", number=200_001 + secrets.randbelow(1000))
    began = time.monotonic()
    with pytest.raises(TaskRejected) as caught:
        await solve(engine, challenge)
    assert caught.value.code == "no_solution"
    assert "0..200000" in caught.value.message
    assert time.monotonic() - began < within(10)


V2_CASES = [
    ("SHA-256", 50, {}),
    ("SHA-384", 50, {}),
    ("SHA-512", 50, {}),
    ("PBKDF2/SHA-256", 200, {}),
    ("PBKDF2/SHA-384", 200, {}),
    ("PBKDF2/SHA-512", 200, {}),
    ("SCRYPT", 256, {"memory_cost": 4, "parallelism": 1}),
    ("ARGON2ID", 1, {"memory_cost": 256, "parallelism": 1}),
]


@pytest.mark.parametrize(("algorithm", "cost", "extra"), V2_CASES, ids=[case[0] for case in V2_CASES])
async def test_v2_deterministic_counter_verified_by_official_library(
    python_engine: PowEngine, algorithm: str, cost: int, extra: dict[str, Any]
) -> None:
    secret = secrets.token_hex(16)
    counter = secrets.randbelow(120)
    created = altcha.create_challenge(
        algorithm,
        cost,
        counter=counter,
        hmac_secret=secret,
        expires_at=int(time.time()) + 300,
        data={"form": secrets.token_hex(4), "n": secrets.randbelow(9)},
        **extra,
    )
    solution = await solve(python_engine, created.to_dict())
    assert solution["counter"] == counter
    result = altcha.verify_solution(solution["token"], secret)
    assert result.verified, vars(result)


@pytest.mark.parametrize("algorithm", ["SHA-256", "PBKDF2/SHA-512", "ARGON2ID"])
async def test_v2_random_prefix(python_engine: PowEngine, algorithm: str) -> None:
    secret = secrets.token_hex(16)
    extra: dict[str, Any] = {"memory_cost": 128, "parallelism": 2} if algorithm == "ARGON2ID" else {}
    prefix = secrets.token_hex(1)[: 1 + secrets.randbelow(2)]  # 1 or 2 hex digits: odd and even
    cost = 2 if algorithm == "ARGON2ID" else 20
    created = altcha.create_challenge(algorithm, cost, key_prefix=prefix, hmac_secret=secret, **extra)
    solution = await solve(python_engine, created.to_dict())
    assert solution["derived_key"].startswith(prefix)
    assert altcha.verify_solution(solution["token"], secret).verified


async def test_v2_key_signature_fast_path(python_engine: PowEngine) -> None:
    secret, key_secret = secrets.token_hex(16), secrets.token_hex(16)
    created = altcha.create_challenge(
        "PBKDF2/SHA-256", 100, counter=secrets.randbelow(50), hmac_secret=secret, hmac_key_secret=key_secret
    )
    assert created.parameters.key_signature
    solution = await solve(python_engine, created.to_dict())
    assert altcha.verify_solution(solution["token"], secret, hmac_key_secret=key_secret).verified


async def test_v2_expired_is_rejected(python_engine: PowEngine) -> None:
    created = altcha.create_challenge("PBKDF2/SHA-256", 10, hmac_secret="s", expires_at=int(time.time()) - 1)
    with pytest.raises(TaskRejected) as caught:
        await solve(python_engine, created.to_dict())
    assert caught.value.code == "challenge_expired"


async def test_v2_code_challenge_is_rejected(python_engine: PowEngine) -> None:
    challenge = altcha.create_challenge("SHA-256", 10, hmac_secret="s").to_dict()
    challenge["codeChallenge"] = {"image": "x", "length": 4}
    with pytest.raises(TaskRejected, match="unsupported_challenge"):
        await solve(python_engine, challenge)
