"""The shared pool: first answer wins, deadlines and cancellations leave no work behind."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from typing import Any

import pytest

from cracker.domain.errors import TaskRejected
from cracker.domain.pow_challenges import PowSha256Task
from cracker.solvers.pow import PowEngine, PowSha256Solver, kernels
from tests.timing import within

from .conftest import make_job

FAR = 10**12


async def quick_search_seconds(engine: PowEngine) -> float:
    """Time of a search that needs one short chunk: long only if the pool is still busy."""
    began = time.monotonic()
    target = hashlib.sha256(b"q7").digest()
    hit = await engine.search(
        "decimal", ("sha256", b"q", "eq", target), start=0, stop=100, chunk=100, deadline=time.time() + 30
    )
    assert hit is not None and hit.nonce == 7
    return time.monotonic() - began


async def test_first_answer_ends_the_search_and_frees_the_pool(engine: PowEngine) -> None:
    prefix, number = secrets.token_bytes(8), 12_345
    target = hashlib.sha256(prefix + b"12345").digest()
    hit = await engine.search(
        "decimal", ("sha256", prefix, "eq", target), start=0, stop=FAR, chunk=1 << 17, deadline=time.time() + 30
    )
    assert hit is not None and (hit.nonce, hit.value) == (number, target)
    assert await quick_search_seconds(engine) < within(1.5)


async def test_cancelled_task_stops_its_workers(engine: PowEngine) -> None:
    impossible = bytes(32)
    search = asyncio.ensure_future(
        engine.search(
            "decimal", ("sha256", b"x", "eq", impossible), start=0, stop=FAR, chunk=1 << 30, deadline=time.time() + 60
        )
    )
    await asyncio.sleep(0.3)
    search.cancel()
    with pytest.raises(asyncio.CancelledError):
        await search
    # Each chunk of 2**30 hashes would take minutes; the flag stopped them within milliseconds.
    assert await quick_search_seconds(engine) < within(1.5)


async def test_exhausted_range_returns_none(python_engine: PowEngine) -> None:
    hit = await python_engine.search(
        "decimal", ("sha256", b"x", "eq", bytes(32)), start=0, stop=50_000, chunk=10_000, deadline=time.time() + 30
    )
    assert hit is None


async def test_deadline_inside_a_long_chunk(python_engine: PowEngine) -> None:
    began = time.monotonic()
    with pytest.raises(TaskRejected, match="solve_timeout"):
        await python_engine.search(
            "decimal", ("sha256", b"x", "eq", bytes(32)), start=0, stop=FAR, chunk=1 << 30, deadline=time.time() + 0.3
        )
    assert time.monotonic() - began < within(2)
    assert await quick_search_seconds(python_engine) < within(1.5)


async def test_many_tasks_share_the_pool(engine: PowEngine) -> None:
    solver = PowSha256Solver(engine)
    jobs = [make_job("pow-sha256", PowSha256Task, {"data": secrets.token_hex(6), "difficulty": 3}) for _ in range(12)]
    solutions = await asyncio.gather(*(solver.solve(job) for job in jobs))
    for job, solution in zip(jobs, solutions, strict=True):
        assert hashlib.sha256(f"{job.params['data']}{solution['nonce']}".encode()).hexdigest().startswith("000")


async def test_engine_lifecycle() -> None:
    engine = PowEngine(workers=1, native=False)
    assert not engine.started
    await engine.start()
    await engine.start()  # idempotent
    assert engine.started and engine.workers == 1 and not engine.native
    await engine.close()
    await engine.close()
    assert not engine.started
    with pytest.raises(ValueError, match="workers"):
        PowEngine(workers=0)


@pytest.mark.skipif(not kernels.native_available(), reason="the C fast path is not built")
@pytest.mark.parametrize("implementation", ["sha-ni", "portable"])
def test_native_and_python_kernels_agree(implementation: str) -> None:
    from cracker.solvers.pow._native import _sha256pow

    default = _sha256pow.implementation()
    try:
        _sha256pow.set_implementation(implementation)
    except ValueError:
        pytest.skip(f"{implementation} is not available on this CPU")
    try:
        compare_with_python(_sha256pow)
    finally:
        _sha256pow.set_implementation(default)


def compare_with_python(_sha256pow: Any) -> None:
    for _ in range(300):
        prefix = secrets.token_bytes(secrets.randbelow(200))
        start = secrets.choice([0, 1, 9, 99_990, 10**9 - 5, 2**40 + secrets.randbelow(10**6)])
        for mode, target in (
            ("hexprefix", secrets.token_hex(2)[: 1 + secrets.randbelow(3)]),
            ("ge16", (2**128 - 2**128 // 500).to_bytes(16, "big")),
        ):
            expected = kernels.search_decimal_python("sha256", prefix, mode, target, start, start + 5000, -1)  # type: ignore[arg-type]
            if mode == "hexprefix":
                assert isinstance(target, str)
                raw, nibbles = bytes.fromhex(target + "0" * (len(target) % 2)), len(target)
            else:
                assert isinstance(target, bytes)
                raw, nibbles = target, 0
            found = _sha256pow.search(prefix, start, start + 5000, 1 if mode == "hexprefix" else 2, raw, nibbles, None)
            assert found == (expected[0] if expected else -1), (prefix, start, mode, target)
        number = start + secrets.randbelow(3000)
        digest = hashlib.sha256(prefix + str(number).encode()).digest()
        assert _sha256pow.search(prefix, start, start + 3000, 0, digest, 0, None) == number
