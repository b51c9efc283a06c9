"""``PowEngine``: one process pool shared by every proof-of-work task of the service.

A search splits a nonce range into chunks. The engine, not the pool's own queue, decides which
chunk runs next: it keeps exactly one chunk per worker process in flight and hands each freed
worker out in turn (round robin) at three levels: accounts, then each account's tasks, then each
task's searches. So one task holds at most one share of the pool however many searches it starts
(Cap's c sub-challenges are one task, not c), an account with many tasks holds one account's
share, and a task of another account waits for about one chunk per worker, not for the flood
(a chunk is sized for about 0.05 to 0.2 s; a key derivation is bounded at creation). The pool
has one process more than ``workers``, the spare: while every worker is busy, an account with no
chunk in flight runs its chunk there at once instead of waiting for one to end (the cores are then
time-shared, one process more than cores, as long as that lasts).

The first chunk that answers ends its search: its queued chunks are dropped and its running ones
see the search's cancel flag (one byte of shared memory) within a few milliseconds, or after the
key derivation in progress. The same happens at the deadline and when the awaiting coroutine is
cancelled (a cancelled task), so a task never leaves work behind. Cancel flags belong to chunks
in flight, and there are never more of those than workers: a flood of searches cannot run the
engine out of them. Hashing never runs on the event loop.

The pool uses the ``forkserver`` start method (``spawn`` where that is missing): the server runs
threads, and forking a threaded process is unsafe.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import contextlib
import multiprocessing
import os
import time
from collections import deque
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

from cracker.domain.errors import TaskRejected
from cracker.solvers.pow import kernels


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


@dataclass(eq=False, slots=True)
class _Turns:
    """A level of the round robin (the engine's accounts, an account's tasks, a task's searches):
    the members with work ready, in turn. Members leave lazily: one found idle is dropped."""

    ready: deque[Any] = field(default_factory=deque)
    #: Searches running under it (the engine forgets it at 0).
    searches: int = 0
    #: Its chunks in flight (accounts only).
    running: int = 0
    #: Whether it sits in its parent's ready queue.
    queued: bool = False


@dataclass(eq=False, slots=True)
class _Search:
    """One nonce range being scanned: its next chunk, its chunks in flight, its outcome."""

    kernel: str
    args: tuple[Any, ...]
    next_start: int
    stop: int
    chunk: int
    width: int
    account: _Turns
    task: _Turns
    outcome: asyncio.Future[Hit | None]
    inflight: set[cf.Future[kernels.Hit | None]] = field(default_factory=set)
    #: The cancel-flag byte its chunks in flight poll; held only while it has chunks in flight.
    slot: int | None = None
    #: Whether it sits in its task's ready queue.
    queued: bool = False

    @property
    def finished(self) -> bool:
        return self.outcome.done()

    @property
    def ready(self) -> bool:
        """Whether it may take another chunk now."""
        return not self.finished and self.next_start < self.stop and len(self.inflight) < self.width


class PowEngine:
    """The shared process pool and its scheduler; use ``async with PowEngine() as engine``."""

    def __init__(self, workers: int | None = None, *, native: bool | None = None) -> None:
        """``workers``: pool size (default: every core). ``native``: force the C fast path on or
        off (default: on when built, unless ``CRACKER_POW_NATIVE=0``)."""
        count = workers if workers is not None else _usable_cores()
        if count < 1:
            raise ValueError("workers must be at least 1")
        self._workers = count
        self._processes = count + 1  # the spare, for an account that has nothing running
        self._native_request = native
        self._native_active = False
        self._executor: cf.ProcessPoolExecutor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._flags: Any = None
        self._free_slots: list[int] = []
        self._accounts: dict[object, _Turns] = {}
        self._tasks: dict[tuple[object, object], _Turns] = {}
        self._turns = _Turns()  # the accounts with work ready
        self._searches: set[_Search] = set()
        self._busy = 0  # chunks submitted and not yet done: at most one per worker
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

    @property
    def active_tasks(self) -> int:
        """Tasks with a search running now."""
        return len(self._tasks)

    async def start(self) -> None:
        """Start the worker processes (idempotent); returns once every worker answered."""
        async with self._start_lock:
            if self._executor is not None:
                return
            methods = multiprocessing.get_all_start_methods()
            ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
            if ctx.get_start_method() == "forkserver":
                ctx.set_forkserver_preload([kernels.__name__])
            # One flag per chunk in flight, and there is one chunk per process at most.
            flags = ctx.RawArray("b", self._processes)
            executor = cf.ProcessPoolExecutor(
                max_workers=self._processes,
                mp_context=ctx,
                initializer=kernels.init_worker,
                initargs=(flags, self._native_request),
            )
            # One call per worker makes the pool start them all now, not on the first task.
            calls = [asyncio.wrap_future(executor.submit(kernels.worker_info)) for _ in range(self._processes)]
            infos = await asyncio.gather(*calls)
            self._native_active = all(info["native"] for info in infos)
            self._flags = flags
            self._free_slots = list(range(self._processes - 1, -1, -1))
            self._busy = 0
            self._loop = asyncio.get_running_loop()
            self._executor = executor

    async def close(self) -> None:
        """Stop the workers; running chunks are told to stop first, running searches fail."""
        executor, self._executor = self._executor, None
        if executor is None:
            return
        self._fail_all(TaskRejected("general_error", "the proof-of-work engine stopped"))
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
        task: object | None = None,
        account: object | None = None,
    ) -> Hit | None:
        """Scan ``[start, stop)`` with ``kernel`` across the pool; the first hit wins.

        Returns ``None`` when the range was exhausted without a hit; raises
        ``TaskRejected("solve_timeout")`` at the deadline (wall-clock ``time.time()`` seconds).
        Among chunks that answer together the smallest nonce wins. ``parallel`` caps the chunks
        of this search in flight (default: one per worker); 1 suits many small searches run at
        once (Cap's sub-challenges): each then finds its smallest nonce and wastes nothing.
        ``task`` and ``account``: the keys the pool is shared by (a task's searches share its
        turns, an account's tasks share the account's); a task without an account is an account of its
        own, and a search with neither is one of its own.
        """
        if kernel not in kernels.KERNELS:
            raise ValueError(f"unknown kernel {kernel!r}")
        if chunk < 1:
            raise ValueError("chunk must be at least 1")
        if start >= stop:
            return None
        if self._executor is None:
            await self.start()
        loop = asyncio.get_running_loop()
        width = max(1, min(parallel or self._workers, self._workers))
        # A range smaller than width chunks is split evenly, so that every core takes a part.
        chunk = max(1, min(chunk, -(-(stop - start) // width)))
        # A task given without its account is an account of its own: its searches still share one
        # set of turns (keyed by a fresh account per search, each search was an account apart, and
        # 5,000 searches of one task took 5,000 turns ahead of another task's one).
        if account is not None:
            account_key: object = account
        else:
            account_key = ("task without an account", task) if task is not None else object()
        task_key = (account_key, task if task is not None else object())
        account_turns = self._accounts.setdefault(account_key, _Turns())
        task_turns = self._tasks.setdefault(task_key, _Turns())
        search = _Search(kernel, args, start, stop, chunk, width, account_turns, task_turns, loop.create_future())
        account_turns.searches += 1
        task_turns.searches += 1
        self._searches.add(search)
        self._make_ready(search)
        self._pump()
        try:
            remaining = deadline - time.time()
            if remaining <= 0:
                raise TaskRejected("solve_timeout", "the proof of work was not found before the deadline")
            done, _ = await asyncio.wait({search.outcome}, timeout=remaining)
            if not done:
                raise TaskRejected("solve_timeout", "the proof of work was not found before the deadline")
            return search.outcome.result()
        finally:
            self._end(search)
            task_turns.searches -= 1
            if task_turns.searches == 0 and self._tasks.get(task_key) is task_turns:
                del self._tasks[task_key]
            account_turns.searches -= 1
            if account_turns.searches == 0 and self._accounts.get(account_key) is account_turns:
                del self._accounts[account_key]
            self._pump()

    # ------------------------------------------------------------------ scheduling (event loop)

    def _make_ready(self, search: _Search) -> None:
        if search.queued or not search.ready:
            return
        search.queued = True
        search.task.ready.append(search)
        # A member in its parent's queue implies its parent is in the engine's: climb till one is.
        if not search.task.queued:
            search.task.queued = True
            search.account.ready.append(search.task)
        if not search.account.queued:
            search.account.queued = True
            self._turns.ready.append(search.account)

    def _pump(self) -> None:
        """Hand free workers out in turn, one chunk per turn; the spare to an idle account."""
        executor = self._executor
        while executor is not None and self._busy < self._processes:
            search = self._take(idle_accounts_only=self._busy >= self._workers)
            if search is None:
                return
            self._submit(executor, search)
            # Each level goes to the back of its queue, if it has more to run: the round robin.
            if search.ready:
                search.queued = True
                search.task.ready.append(search)
            if search.task.ready:
                search.task.queued = True
                search.account.ready.append(search.task)
            if search.account.ready:
                search.account.queued = True
                self._turns.ready.append(search.account)

    def _take(self, *, idle_accounts_only: bool = False) -> _Search | None:
        """The next search in turn, taken out of its queues with its task and account (``_pump``
        puts each back at the end of its queue when it has more to run); idle ones drop out.
        ``idle_accounts_only``: only the spare is free, for the first account with nothing running."""
        accounts = self._turns.ready
        candidates = [a for a in accounts if a.running == 0] if idle_accounts_only else None
        while accounts if candidates is None else candidates:
            account: _Turns = accounts.popleft() if candidates is None else candidates.pop(0)
            if candidates is not None:
                accounts.remove(account)
            account.queued = False
            search = _take_from(account)
            if search is not None:
                return search
        return None

    def _submit(self, executor: cf.ProcessPoolExecutor, search: _Search) -> None:
        if search.slot is None:
            search.slot = self._free_slots.pop()
            self._flags[search.slot] = 0
        begin = search.next_start
        end = min(search.stop, begin + search.chunk)
        search.next_start = end
        try:
            future = executor.submit(kernels.run_unit, search.kernel, search.args, begin, end, search.slot)
        except BrokenProcessPool as exc:
            self._broken(executor, exc)
            return
        except RuntimeError as exc:  # shut down meanwhile
            _settle(search, error=TaskRejected("general_error", f"the proof-of-work engine stopped: {exc}"))
            self._release_slot(search)
            return
        self._busy += 1
        search.account.running += 1
        search.inflight.add(future)
        loop = self._loop
        assert loop is not None

        def done(chunk: cf.Future[kernels.Hit | None]) -> None:
            # Runs in the pool's manager thread: everything else happens on the event loop.
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody is left to tell
                loop.call_soon_threadsafe(self._chunk_done, search, chunk)

        future.add_done_callback(done)

    def _chunk_done(self, search: _Search, chunk: cf.Future[kernels.Hit | None]) -> None:
        if chunk not in search.inflight:
            return  # counted already (the engine was reset meanwhile)
        search.inflight.discard(chunk)
        self._busy -= 1
        search.account.running -= 1
        if not chunk.cancelled():
            error = chunk.exception()
            if isinstance(error, BrokenProcessPool):
                self._release_slot(search)
                if self._executor is not None:
                    self._broken(self._executor, error)
                return
            if error is not None:
                _settle(search, error=error)
            else:
                result = chunk.result()
                if result is not None:
                    _settle(search, hit=Hit(*result))
        if not search.finished and not search.inflight and search.next_start >= search.stop:
            _settle(search, hit=None)  # the whole range answered: no hit in it
        if search.finished:
            self._stop_chunks(search)
        if not search.inflight:
            self._release_slot(search)
        self._make_ready(search)
        self._pump()

    def _end(self, search: _Search) -> None:
        """The awaiting side is gone (answer, deadline, cancel): stop what is left of the search."""
        if not search.finished:
            search.outcome.cancel()
        elif not search.outcome.cancelled():
            search.outcome.exception()  # read, so that an error nobody awaited is not logged
        self._stop_chunks(search)
        if not search.inflight:
            self._release_slot(search)
        self._searches.discard(search)

    def _stop_chunks(self, search: _Search) -> None:
        if search.slot is not None:
            self._flags[search.slot] = 1
        for chunk in list(search.inflight):
            chunk.cancel()  # only chunks not yet sent to a worker; the flag stops the others

    def _release_slot(self, search: _Search) -> None:
        if search.slot is not None and not search.inflight:
            self._free_slots.append(search.slot)
            search.slot = None

    def _broken(self, executor: cf.ProcessPoolExecutor, exc: BaseException) -> None:
        """A worker died (killed for memory, say): the pool cannot be used again; a fresh one
        starts on the next search, and every search in flight fails."""
        if self._executor is executor:
            self._executor = None
            executor.shutdown(wait=False, cancel_futures=True)
        error = TaskRejected("general_error", "a proof-of-work worker process died")
        error.__cause__ = exc
        self._fail_all(error)

    def _fail_all(self, error: BaseException) -> None:
        for search in list(self._searches):
            _settle(search, error=error)
            if search.slot is not None:
                self._flags[search.slot] = 1
            search.inflight.clear()
            search.slot = None
        self._turns = _Turns()
        for turns in (*self._accounts.values(), *self._tasks.values()):
            turns.ready.clear()
            turns.queued = False
            turns.running = 0
        self._busy = 0
        self._free_slots = list(range(self._processes - 1, -1, -1))


def _take_from(account: _Turns) -> _Search | None:
    """The account's next task in turn with a search ready, and that search; idle ones drop out."""
    while account.ready:
        task: _Turns = account.ready.popleft()
        task.queued = False
        while task.ready:
            search: _Search = task.ready.popleft()
            search.queued = False
            if search.ready:
                return search
    return None


def _settle(search: _Search, *, hit: Hit | None = None, error: BaseException | None = None) -> None:
    if search.finished:
        return
    if error is not None:
        search.outcome.set_exception(error)
    else:
        search.outcome.set_result(hit)
