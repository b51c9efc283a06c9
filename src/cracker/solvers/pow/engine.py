"""``PowEngine``: one process pool shared by every proof-of-work task of the service.

A search splits a nonce range into chunks and keeps about one chunk per core in flight; the first
chunk that answers ends the search: the chunks still queued are cancelled and the running ones see
the search's cancel flag (one byte of shared memory) within a few milliseconds. The same happens
at the deadline and when the awaiting coroutine is cancelled (a cancelled task), so a task never
leaves work behind. Hashing never runs on the event loop.

The pool uses the ``forkserver`` start method (``spawn`` where that is missing): the server runs
threads, and forking a threaded process is unsafe.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import multiprocessing
import os
import threading
import time
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Self

from cracker.domain.errors import TaskRejected
from cracker.solvers.pow import kernels

#: Searches that may run at once (each holds one cancel-flag byte while it runs).
MAX_CONCURRENT_SEARCHES: Final = 4096


@dataclass(frozen=True, slots=True)
class Hit:
    """The answer of a search: the nonce (or counter) and the digest / key that matched."""

    nonce: int
    value: bytes


def _usable_cores() -> int:
    """Cores this process may run on (a container's CPU set, not the host's count)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


class _Slots:
    """Cancel-flag bytes handed out to searches; one is reused only once its chunks are all done."""

    def __init__(self, size: int) -> None:
        self._free = list(range(size - 1, -1, -1))
        self._lock = threading.Lock()  # released from executor callback threads too

    def acquire(self) -> int:
        with self._lock:
            if not self._free:
                raise TaskRejected("general_error", "too many proof-of-work searches at once")
            return self._free.pop()

    def release(self, slot: int) -> None:
        with self._lock:
            self._free.append(slot)


class PowEngine:
    """The shared process pool and its search loop; use ``async with PowEngine() as engine``."""

    def __init__(self, workers: int | None = None, *, native: bool | None = None) -> None:
        """``workers``: pool size (default: every core). ``native``: force the C fast path on or
        off (default: on when built, unless ``CRACKER_POW_NATIVE=0``)."""
        count = workers if workers is not None else _usable_cores()
        if count < 1:
            raise ValueError("workers must be at least 1")
        self._workers = count
        self._native_request = native
        self._native_active = False
        self._executor: cf.ProcessPoolExecutor | None = None
        self._flags: Any = None
        self._slots = _Slots(MAX_CONCURRENT_SEARCHES)
        self._start_lock = asyncio.Lock()

    @property
    def workers(self) -> int:
        return self._workers

    @property
    def native(self) -> bool:
        """Whether the workers run the C fast path for SHA-256 (known once started)."""
        return self._native_active

    @property
    def started(self) -> bool:
        return self._executor is not None

    async def start(self) -> None:
        """Start the worker processes (idempotent); returns once every worker answered."""
        async with self._start_lock:
            if self._executor is not None:
                return
            methods = multiprocessing.get_all_start_methods()
            ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
            if ctx.get_start_method() == "forkserver":
                ctx.set_forkserver_preload([kernels.__name__])
            self._flags = ctx.RawArray("b", MAX_CONCURRENT_SEARCHES)
            executor = cf.ProcessPoolExecutor(
                max_workers=self._workers,
                mp_context=ctx,
                initializer=kernels.init_worker,
                initargs=(self._flags, self._native_request),
            )
            # One call per worker makes the pool start them all now, not on the first task.
            calls = [asyncio.wrap_future(executor.submit(kernels.worker_info)) for _ in range(self._workers)]
            infos = await asyncio.gather(*calls)
            self._native_active = all(info["native"] for info in infos)
            self._executor = executor

    async def close(self) -> None:
        """Stop the workers; running chunks are told to stop first."""
        executor, self._executor = self._executor, None
        if executor is None:
            return
        if self._flags is not None:
            for i in range(MAX_CONCURRENT_SEARCHES):
                self._flags[i] = 1
        await asyncio.to_thread(executor.shutdown, wait=True, cancel_futures=True)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def search(
        self,
        kernel: str,
        args: tuple[Any, ...],
        *,
        start: int,
        stop: int,
        chunk: int,
        deadline: float,
        parallel: int | None = None,
    ) -> Hit | None:
        """Scan ``[start, stop)`` with ``kernel`` across the pool; the first hit wins.

        Returns ``None`` when the range was exhausted without a hit; raises
        ``TaskRejected("solve_timeout")`` at the deadline (wall-clock ``time.time()`` seconds).
        Among chunks that answer together the smallest nonce wins. ``parallel`` caps the chunks
        of this search in flight (default: one per worker); 1 suits many small searches run at
        once (Cap's sub-challenges): each then finds its smallest nonce and wastes nothing.
        """
        if kernel not in kernels.KERNELS:
            raise ValueError(f"unknown kernel {kernel!r}")
        if chunk < 1:
            raise ValueError("chunk must be at least 1")
        if self._executor is None:
            await self.start()
        executor = self._executor
        assert executor is not None
        width = max(1, min(parallel or self._workers, self._workers))
        # A range smaller than width chunks is split evenly, so that every core takes a part.
        chunk = max(1, min(chunk, -(-(stop - start) // width)))
        slot = self._slots.acquire()
        self._flags[slot] = 0
        outstanding: set[cf.Future[kernels.Hit | None]] = set()
        lock = threading.Lock()
        finished = False

        def chunk_done(future: cf.Future[kernels.Hit | None]) -> None:
            # Runs in the executor's thread; the slot goes back once no chunk can still read it.
            with lock:
                outstanding.discard(future)
                free = finished and not outstanding
            if free:
                self._slots.release(slot)

        inflight: dict[asyncio.Future[kernels.Hit | None], int] = {}
        next_start = start
        try:
            while True:
                while len(inflight) < width and next_start < stop:
                    end = min(stop, next_start + chunk)
                    future = executor.submit(kernels.run_unit, kernel, args, next_start, end, slot)
                    with lock:
                        outstanding.add(future)
                    future.add_done_callback(chunk_done)
                    inflight[asyncio.wrap_future(future)] = next_start
                    next_start = end
                if not inflight:
                    return None
                remaining = deadline - time.time()
                if remaining <= 0:
                    raise TaskRejected("solve_timeout", "the proof of work was not found before the deadline")
                done, _ = await asyncio.wait(inflight, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
                hits = []
                for waited in done:
                    del inflight[waited]
                    result = waited.result()
                    if result is not None:
                        hits.append(Hit(*result))
                if hits:
                    return min(hits, key=lambda hit: hit.nonce)
        except BrokenProcessPool as exc:
            # A worker died (killed for memory, say): the pool cannot be used again; a fresh one
            # starts on the next search.
            if self._executor is executor:
                self._executor = None
                executor.shutdown(wait=False, cancel_futures=True)
            raise TaskRejected("general_error", "a proof-of-work worker process died") from exc
        finally:
            self._flags[slot] = 1
            for waited in inflight:
                waited.cancel()
            with lock:
                finished = True
                free = not outstanding
            if free:
                self._slots.release(slot)
