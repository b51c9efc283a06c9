"""Friendly Captcha v1: the spec's rule, checked by an independent BLAKE2b implementation path."""

from __future__ import annotations

import base64
import math
import secrets
import struct
from hashlib import blake2b

import pytest

from cracker.domain.pow_challenges import FriendlyCaptchaTask
from cracker.solvers.pow import FriendlyCaptchaSolver, PowEngine

from .conftest import make_job


def random_puzzle(count: int, difficulty: int, size: int) -> str:
    buffer = bytearray(secrets.token_bytes(size))
    buffer[14], buffer[15] = count, difficulty
    signature = secrets.token_hex(16)
    return f"{signature}.{base64.b64encode(bytes(buffer)).decode()}"


def passes(buffer: bytes, index: int, solution: bytes, difficulty: int) -> bool:
    """The rule of the spec, rebuilt here: BLAKE2b-256 of the 128-byte block, first LE u32 < threshold."""
    block = buffer.ljust(120, b"\0") + solution
    assert solution[0] == index and len(block) == 128
    (first,) = struct.unpack("<I", blake2b(block, digest_size=32).digest()[:4])
    return first < math.floor(2 ** ((255.999 - difficulty) / 8))


@pytest.mark.parametrize("size", [32, 64, 120])
async def test_solutions_pass_the_rule(python_engine: PowEngine, size: int) -> None:
    count, difficulty = 1 + secrets.randbelow(8), 100 + secrets.randbelow(30)
    puzzle = random_puzzle(count, difficulty, size)
    solution = await FriendlyCaptchaSolver(python_engine).solve(
        make_job("friendly-captcha", FriendlyCaptchaTask, {"puzzle": puzzle})
    )
    signature, encoded, solutions_b64, diagnostics_b64 = solution["token"].split(".")
    assert f"{signature}.{encoded}" == puzzle
    buffer, solutions = base64.b64decode(encoded), base64.b64decode(solutions_b64)
    assert len(solutions) == 8 * count
    for index in range(count):
        assert passes(buffer, index, solutions[8 * index : 8 * index + 8], difficulty)
    diagnostics = base64.b64decode(diagnostics_b64)
    assert len(diagnostics) == 3 and diagnostics[0] == 2
    assert abs(struct.unpack(">H", diagnostics[1:])[0] - solution["took_ms"] / 1000) <= 1
    assert len(solution["nonces"]) == count
