"""mCaptcha: the published test vector, and random configs checked by an independent implementation."""

from __future__ import annotations

import hashlib
import json
import secrets
import struct

from cracker.domain.pow_challenges import McaptchaConfig, McaptchaTask
from cracker.solvers.pow import McaptchaSolver, PowEngine
from cracker.solvers.pow import mcaptcha as family
from cracker.solvers.pow.kernels import search_decimal_python

from .conftest import make_job

VECTOR = {"salt": "13b9bb30d3eef8ed0fd295b9e0df87", "string": "05f9d799906c8f24a857035828a5b9"}
VECTOR_NONCE, VECTOR_RESULT = 26252, "340279805739743599719846742581033620214"


def independent_score(salt: str, string: str, nonce: int) -> int:
    """mCaptcha's hash, written from its definition (bincode string = u64 LE length + bytes)."""
    message = salt.encode() + struct.pack("<Q", len(string.encode())) + string.encode() + str(nonce).encode()
    high, low = struct.unpack(">QQ", hashlib.sha256(message).digest()[:16])
    return high << 64 | low


def test_published_vector_is_the_first_nonce_found() -> None:
    config = McaptchaConfig(**VECTOR, difficulty_factor=50_000)
    threshold = family.threshold(50_000).to_bytes(16, "big")
    hit = search_decimal_python("sha256", family.prefix(config), "ge16", threshold, 1, 100_000, -1)
    assert hit is not None
    assert hit[0] == VECTOR_NONCE
    assert str(family.score(hit[1])) == VECTOR_RESULT == str(independent_score(**VECTOR, nonce=VECTOR_NONCE))


async def test_published_vector_through_the_solver(engine: PowEngine) -> None:
    job = make_job("mcaptcha", McaptchaTask, {"config": {**VECTOR, "difficulty_factor": 50_000}, "site_key": "k"})
    solution = await McaptchaSolver(engine).solve(job)
    body = json.loads(solution["token"])
    assert body == {"string": VECTOR["string"], "result": solution["result"], "nonce": solution["nonce"], "key": "k"}
    assert int(body["result"]) == independent_score(**VECTOR, nonce=body["nonce"])
    if body["nonce"] <= VECTOR_NONCE:  # the first chunk answered first: it is the vector itself
        assert (body["nonce"], body["result"]) == (VECTOR_NONCE, VECTOR_RESULT)


async def test_random_configs(engine: PowEngine) -> None:
    for _ in range(3):
        difficulty = 1000 + secrets.randbelow(200_000)
        config = {
            "string": secrets.token_hex(secrets.randbelow(30) + 1),
            "salt": secrets.token_hex(secrets.randbelow(30) + 1),
            "difficulty_factor": difficulty,
            "max_recorded_nonce": secrets.randbelow(10**6),
        }
        site_key = secrets.token_urlsafe(12)
        solution = await McaptchaSolver(engine).solve(
            make_job("mcaptcha", McaptchaTask, {"config": config, "site_key": site_key})
        )
        score = independent_score(config["salt"], config["string"], solution["nonce"])
        u128 = 2**128 - 1
        assert score >= u128 - u128 // difficulty
        assert json.loads(solution["token"])["result"] == str(score)
        assert json.loads(solution["token"])["key"] == site_key
