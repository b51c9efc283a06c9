"""One task holds one share of the pool, however many searches it runs; failures stop siblings."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import time

import pytest

from cracker.domain.errors import TaskRejected
from cracker.domain.pow_challenges import ALTCHA_V2_MAX_STEP_UNITS
from cracker.solvers.pow import PowEngine
from cracker.solvers.pow._common import all_hits
from tests.timing import within

from .test_pow_engine import FAR, quick_search_seconds


def impossible(engine: PowEngine, task: object, account: object = None) -> asyncio.Task[object]:
    return asyncio.ensure_future(
        engine.search(
            "decimal", ("sha256", b"x", "eq", bytes(32)), start=0, stop=FAR, chunk=1 << 16,
            deadline=time.time() + 60, task=task, account=account,
        )
    )


async def test_thousands_of_searches_of_one_task_are_one_share(python_engine: PowEngine) -> None:
    # 5,000 searches once took every one of 4,096 cancel flags: this task and any other sent at
    # the same moment failed general_error.
    targets = [hashlib.sha256(b"t%d" % (i % 7)).digest() for i in range(5000)]
    many = asyncio.gather(*(
        python_engine.search("decimal", ("sha256", b"t", "eq", target), start=0, stop=10, chunk=10,
                             deadline=time.time() + 60, parallel=1, task="big task")
        for target in targets
    ))
    await asyncio.sleep(0)
    began = time.monotonic()
    other = await python_engine.search(
        "decimal", ("sha256", b"q", "eq", hashlib.sha256(b"q7").digest()), start=0, stop=100, chunk=100,
        deadline=time.time() + 30, task="other task",
    )
    waited = time.monotonic() - began
    hits = await many
    assert other is not None and other.nonce == 7
    assert [hit.nonce if hit else None for hit in hits] == [i % 7 for i in range(5000)]
    # Round robin: the other task waited for about one chunk per worker, not for 5,000 of them
    # (about 3 s here, on a 2-core VM, when each search of the big task counted as an account).
    assert waited < within(1)
    assert python_engine.active_tasks == 0


async def test_an_account_flooding_the_pool_leaves_a_turn_to_another(engine: PowEngine) -> None:
    # Sixteen endless tasks of one account: another account's search waits for one chunk.
    flood = [impossible(engine, f"flood {i}", "account A") for i in range(16)]
    await asyncio.sleep(0.3)
    try:
        assert await quick_search_seconds(engine) < within(1.5)
    finally:
        for search in flood:
            search.cancel()
        await asyncio.gather(*flood, return_exceptions=True)
    assert await quick_search_seconds(engine) < within(1.5)


async def test_the_first_miss_stops_the_sibling_searches(python_engine: PowEngine) -> None:
    def miss() -> TaskRejected:
        return TaskRejected("no_solution", "sub-challenge without a solution")

    searches = [
        python_engine.search("decimal", ("sha256", b"x", "eq", bytes(32)), start=0, stop=FAR, chunk=1 << 16,
                             deadline=time.time() + 60, parallel=1, task="task")
        for _ in range(2)
    ]
    searches.append(
        python_engine.search("decimal", ("sha256", b"x", "eq", bytes(32)), start=0, stop=1000, chunk=1000,
                             deadline=time.time() + 60, task="task")
    )
    with pytest.raises(TaskRejected, match="no_solution"):
        await all_hits(searches, lambda index: miss())
    # The two endless siblings were stopped with the task: the pool is free at once.
    assert await quick_search_seconds(python_engine) < within(1.5)


async def test_the_costliest_key_derivation_stops_soon_after_the_deadline(python_engine: PowEngine) -> None:
    # PBKDF2-SHA-256 at the per-derivation limit (about 0.1 s each here), a key no counter derives.
    spec = ("PBKDF2/SHA-256", ALTCHA_V2_MAX_STEP_UNITS, 32, None, None)
    began = time.monotonic()
    with pytest.raises(TaskRejected, match="solve_timeout"):
        await python_engine.search(
            "kdf", (spec, b"n" * 16, b"s" * 16, "ab" * 16), start=0, stop=10_000, chunk=1,
            deadline=time.time() + 0.5, task="kdf task",
        )
    assert time.monotonic() - began < within(2)
    # A worker finishes at most the derivation it had begun: the pool is free within one.
    assert await quick_search_seconds(python_engine) < within(1.5)


async def test_a_dead_worker_fails_the_searches_in_flight_and_the_next_search_gets_a_fresh_pool() -> None:
    async with PowEngine(workers=1, native=False) as engine:
        running = impossible(engine, "victim")
        await asyncio.sleep(0.3)
        # Kill every worker process of the pool (the spare included), as the OOM killer would.
        executor = engine._executor
        assert executor is not None
        for process in list(executor._processes.values()):
            os.kill(process.pid, signal.SIGKILL)
        with pytest.raises(TaskRejected, match="general_error"):
            await running
        assert await quick_search_seconds(engine) < 10  # a fresh pool started for it


async def test_closing_the_engine_fails_its_running_searches() -> None:
    engine = PowEngine(workers=1, native=False)
    await engine.start()
    running = impossible(engine, "cut short")
    await asyncio.sleep(0.2)
    await engine.close()
    with pytest.raises(TaskRejected, match="general_error"):
        await running
