"""Malformed challenges fail at creation, with the location of each bad field."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from cracker.domain.pow_challenges import (
    AltchaTask,
    CapTask,
    FriendlyCaptchaTask,
    McaptchaTask,
    PowSha256Task,
)

V1 = {"algorithm": "SHA-256", "challenge": "ab" * 32, "salt": "s&", "signature": "00", "maxnumber": 100}
V2 = {"parameters": {"algorithm": "PBKDF2/SHA-256", "cost": 10, "nonce": "aa", "salt": "bb"}, "signature": "x"}


def puzzle(count: int = 1, difficulty: int = 0, size: int = 32, signature: str = "sig") -> str:
    buffer = bytearray(size)
    buffer[14:16] = bytes((count, difficulty))
    return f"{signature}.{base64.b64encode(bytes(buffer)).decode()}"


PUZZLE = puzzle()


def locations(model: type[BaseModel], data: dict[str, Any]) -> set[tuple[str | int, ...]]:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    return {tuple(error["loc"]) for error in caught.value.errors()}


def with_(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    merged = {**base, **changes}
    return {k: v for k, v in merged.items() if v is not ...}


@pytest.mark.parametrize(
    ("data", "loc"),
    [
        ({"data": "x", "difficulty": 0}, ("difficulty",)),
        ({"data": "x", "difficulty": 8}, ("difficulty",)),
        ({"data": "", "difficulty": 3}, ("data",)),
        ({"data": "x"}, ("difficulty",)),
        ({"data": "x", "difficulty": "4"}, ("difficulty",)),
        ({"data": "x", "difficulty": 4, "nonce": 1}, ("nonce",)),
    ],
)
def test_pow_sha256(data: dict[str, Any], loc: tuple[str, ...]) -> None:
    assert loc in locations(PowSha256Task, data)


@pytest.mark.parametrize(
    ("challenge", "loc"),
    [
        (with_(V1, challenge="zz" * 32), ("challenge", "v1", "challenge")),
        (with_(V1, challenge="ab" * 20), ("challenge", "v1", "challenge")),
        (with_(V1, algorithm="MD5"), ("challenge", "v1", "algorithm")),
        (with_(V1, maxnumber=10**9 + 1), ("challenge", "v1", "maxnumber")),
        (with_(V1, maxNumber=0), ("challenge", "v1", "maxNumber")),
        (with_(V1, salt=...), ("challenge", "v1", "salt")),
        (with_(V1, signature=...), ("challenge", "v1", "signature")),
        (with_(V1, maxNumber=5), ("challenge", "v1")),
        (
            {**V2, "parameters": with_(V2["parameters"], algorithm="BCRYPT")},
            ("challenge", "v2", "parameters", "algorithm"),
        ),
        ({**V2, "parameters": with_(V2["parameters"], nonce="abc")}, ("challenge", "v2", "parameters", "nonce")),
        ({**V2, "parameters": with_(V2["parameters"], salt="xyz0")}, ("challenge", "v2", "parameters", "salt")),
        ({**V2, "parameters": with_(V2["parameters"], cost=0)}, ("challenge", "v2", "parameters", "cost")),
        ({**V2, "parameters": with_(V2["parameters"], cost=10**8)}, ("challenge", "v2", "parameters", "cost")),
        (
            {**V2, "parameters": with_(V2["parameters"], algorithm="SCRYPT", cost=1000)},
            ("challenge", "v2", "parameters", "cost"),
        ),
        (
            {**V2, "parameters": with_(V2["parameters"], algorithm="SCRYPT", cost=2**20, memoryCost=8)},
            ("challenge", "v2", "parameters", "memoryCost"),
        ),
        (
            {**V2, "parameters": with_(V2["parameters"], algorithm="ARGON2ID", salt="00" * 8, memoryCost=2**20)},
            ("challenge", "v2", "parameters", "memoryCost"),
        ),
        (
            {**V2, "parameters": with_(V2["parameters"], algorithm="ARGON2ID")},
            ("challenge", "v2", "parameters", "salt"),
        ),
        (
            {**V2, "parameters": with_(V2["parameters"], keyLength=4, keyPrefix="0" * 9)},
            ("challenge", "v2", "parameters", "keyPrefix"),
        ),
        (
            {**V2, "parameters": with_(V2["parameters"], algorithm="SHA-256", keyLength=48)},
            ("challenge", "v2", "parameters", "keyLength"),
        ),
        ({**V2, "parameters": with_(V2["parameters"], cost=...)}, ("challenge", "v2", "parameters", "cost")),
    ],
)
def test_altcha(challenge: dict[str, Any], loc: tuple[str, ...]) -> None:
    assert loc in locations(AltchaTask, {"challenge": challenge})


def test_altcha_top_level_forbids_extras_and_vendor_objects_keep_theirs() -> None:
    assert ("extra",) in locations(AltchaTask, {"challenge": V1, "extra": 1})
    served = {**V1, "maxNumber": 100, "codeChallenge": {"image": "x"}, "future": [1]}
    # Echoed exactly as served: no defaults added, vendor fields kept.
    assert AltchaTask.model_validate({"challenge": served}).model_dump(mode="json") == {"challenge": served}
    served_v2 = {"parameters": {**V2["parameters"], "data": None, "expiresAt": 5}, "signature": "x"}
    assert AltchaTask.model_validate({"challenge": served_v2}).model_dump(mode="json") == {"challenge": served_v2}


CAP = {"challenge": {"c": 50, "s": 32, "d": 4}, "token": "t0k", "expires": 1}


@pytest.mark.parametrize(
    ("answer", "loc"),
    [
        (with_(CAP, challenge={"c": 0, "s": 32, "d": 4}), ("challenge", "challenge", "format1", "c")),
        (with_(CAP, challenge={"c": 50, "s": 32, "d": 9}), ("challenge", "challenge", "format1", "d")),
        (with_(CAP, challenge={"c": 5000, "s": 32, "d": 6}), ("challenge", "challenge", "format1", "c")),
        (with_(CAP, challenge={"c": 50, "s": 32, "d": 4, "x": 1}), ("challenge", "challenge", "format1", "x")),
        (with_(CAP, token=...), ("challenge", "token")),
        (with_(CAP, token=""), ("challenge", "token")),
        (with_(CAP, expires="soon"), ("challenge", "expires")),
    ],
)
def test_cap(answer: dict[str, Any], loc: tuple[str, ...]) -> None:
    assert loc in locations(CapTask, {"challenge": answer})


MC = {"string": "s", "salt": "salt", "difficulty_factor": 50_000}


@pytest.mark.parametrize(
    ("config", "loc"),
    [
        (with_(MC, difficulty_factor=0), ("config", "difficulty_factor")),
        (with_(MC, difficulty_factor=2**40), ("config", "difficulty_factor")),
        (with_(MC, string=...), ("config", "string")),
        (with_(MC, salt=""), ("config", "salt")),
    ],
)
def test_mcaptcha(config: dict[str, Any], loc: tuple[str, ...]) -> None:
    assert loc in locations(McaptchaTask, {"config": config, "site_key": "k"})


def test_mcaptcha_needs_site_key() -> None:
    assert ("site_key",) in locations(McaptchaTask, {"config": MC})


@pytest.mark.parametrize(
    "puzzle",
    [
        "no-dot",
        "sig.not base64!",
        "sig." + "AAAA",  # 3 bytes: too short to hold n and d
        PUZZLE + ".extra",
        puzzle(count=0),
        puzzle(difficulty=255),  # 2**32 hashes per solution
        puzzle(count=255, difficulty=200),
        puzzle(signature=""),
        puzzle(size=121),  # would overlap the solution bytes 120..127
    ],
)
def test_friendly(puzzle: str) -> None:
    assert ("puzzle",) in locations(FriendlyCaptchaTask, {"puzzle": puzzle})


def test_friendly_accepts_a_well_formed_puzzle() -> None:
    assert FriendlyCaptchaTask.model_validate({"puzzle": PUZZLE}).puzzle == PUZZLE


def v2_parameters(**changes: Any) -> dict[str, Any]:
    return {"parameters": with_(V2["parameters"], **changes), "signature": "x"}


@pytest.mark.parametrize(
    ("changes", "accepted"),
    [
        ({"keyPrefix": "000"}, True),  # random mode: 4,096 expected, below 1/16 of 1,000,000 counters
        ({"keyPrefix": "0000"}, False),  # 65,536 expected: above 62,500
        ({"keyPrefix": "0" * 7}, False),  # too long for chance, too short for a server's key
        ({"keyPrefix": "ab" * 4}, True),  # deterministic: the server's own key, 4 bytes
        ({"keyPrefix": "ab" * 16}, True),  # altcha-lib's default: half of a 32-byte key
        ({"keyPrefix": "ab" * 17}, False),  # more than half the key: only chance could match it
        ({"algorithm": "PBKDF2/SHA-256", "cost": 250_000}, True),  # the per-derivation limit
        ({"algorithm": "PBKDF2/SHA-256", "cost": 250_001}, False),
        ({"algorithm": "PBKDF2/SHA-512", "cost": 83_334}, False),  # 3 units an iteration
        ({"algorithm": "SCRYPT", "cost": 16384, "memoryCost": 8}, True),
        ({"algorithm": "SCRYPT", "cost": 32768, "memoryCost": 8}, False),
        ({"algorithm": "ARGON2ID", "cost": 1, "memoryCost": 65536, "salt": "ab" * 8}, True),
        ({"algorithm": "ARGON2ID", "cost": 2, "salt": "ab" * 8}, False),  # default 64 MiB, twice
    ],
)
def test_altcha_v2_work_limits(changes: dict[str, Any], accepted: bool) -> None:
    data = {"challenge": v2_parameters(**changes)}
    if accepted:
        AltchaTask.model_validate(data)
    else:
        with pytest.raises(ValidationError) as caught:
            AltchaTask.model_validate(data)
        assert {error["type"] for error in caught.value.errors()} == {"work_limit_exceeded"}


def test_altcha_v2_counters_shrink_with_the_cost_of_a_derivation() -> None:
    from cracker.domain.pow_challenges import AltchaV2Parameters

    cheap = AltchaV2Parameters.model_validate(with_(V2["parameters"], cost=10))
    typical = AltchaV2Parameters.model_validate(with_(V2["parameters"], cost=5000))
    costly = AltchaV2Parameters.model_validate(with_(V2["parameters"], cost=250_000))
    assert (cheap.counters, typical.counters, costly.counters) == (1_000_000, 214_748, 4_294)
    # A random-mode "00" still expects 256 derivations, below 1/16 of the 4,294 counters.
    assert costly.keyPrefix == "00"


def test_cap_salts_derived_by_the_server_are_bounded() -> None:
    assert ("challenge", "challenge", "format1", "c") in locations(
        CapTask, {"challenge": {"challenge": {"c": 10_000, "s": 1024, "d": 1}, "token": "t"}}
    )
    CapTask.model_validate({"challenge": {"challenge": {"c": 10_000, "s": 100, "d": 1}, "token": "t"}})
