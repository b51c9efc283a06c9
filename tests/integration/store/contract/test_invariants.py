"""Property-based, stateful: the billing and queue invariants under any interleaving, on both stores.

Hypothesis drives a store through random sequences of create (with or without an
Idempotency-Key and a callback), claim, complete (batches, stale leases included), a worker's
rejection (charged or not), a client's cancel, time passing (leases expire and are requeued or
rejected ``worker_lost``, deadlines pass) and top-ups, and checks after every step:

- the ledger sums to the balance columns, and no balance is negative;
- every task holds once; an ended task has captured or released its hold, exactly once, and a
  live one has done neither (``audit.audit_ledger``);
- no task ends twice, and each operation did exactly what a model of the queue says it should
  (a completion under a lost lease changes nothing; a claim takes only pending tasks, leaves none
  it could take, and never takes an account past its in-flight cap).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from typing import Any, ClassVar, TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from cracker.domain.clock import new_id
from cracker.domain.tasks import ClaimedTask, TaskStatus
from cracker.domain.workers import Completion
from cracker.store import IdempotencyKey, IdempotencyKeyTaken, NewTask, Rejection, Store, leases, open_store

from .helpers import TYPE, assert_books_balance, empty

T = TypeVar("T")
LEASE_S = 30.0
#: A few lease expiries fit in a task's life, and time passing reaches every deadline in a few steps.
DEADLINE_S = 100.0
MAX_ATTEMPTS = 3
SETTINGS = settings(
    max_examples=20, stateful_step_count=25, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


class QueueAndBooks(RuleBasedStateMachine):
    url: ClassVar[str]

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.store: Store = open_store(self.url)
        self.run(empty(self.store))
        self.now = time.time()
        self.accounts: list[str] = []
        # The model: every task's state as the operations so far must have left it.
        self.status: dict[str, TaskStatus] = {}
        self.lease: dict[str, tuple[str, int, float]] = {}  # running task -> (owner, attempt, expires)
        self.attempts: dict[str, int] = {}
        self.deadline: dict[str, float] = {}
        self.pool_only: dict[str, bool] = {}
        self.account: dict[str, str] = {}
        self.claims: list[ClaimedTask] = []  # every lease ever granted, stale ones too
        self.keys: dict[tuple[str, str], str] = {}  # (account, key) -> task

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(work)

    def teardown(self) -> None:
        self.run(self.store.close())
        self.loop.close()

    def _live(self) -> list[str]:
        return [t for t, s in self.status.items() if not s.terminal]

    def _ended(self, task_id: str, status: TaskStatus) -> None:
        assert not self.status[task_id].terminal, f"task {task_id} ended twice"
        self.status[task_id] = status
        self.lease.pop(task_id, None)

    @initialize(balances=st.lists(st.integers(0, 60), min_size=1, max_size=3))
    def open_accounts(self, balances: list[int]) -> None:
        for amount in balances:
            account_id = new_id()

            def work(tx: Any, account_id: str = account_id, amount: int = amount) -> None:
                tx.insert_account(account_id, "prop", self.now)
                if amount:
                    tx.top_up(account_id, amount, self.now)

            self.run(self.store.write(work))
            self.accounts.append(account_id)

    @rule(data=st.data(), amount=st.integers(1, 40))
    def top_up(self, data: st.DataObject, amount: int) -> None:
        account_id = data.draw(st.sampled_from(self.accounts))
        self.run(self.store.write(lambda tx: tx.top_up(account_id, amount, self.now)))

    @rule(
        data=st.data(), price=st.integers(0, 15), callback=st.booleans(),
        key=st.none() | st.sampled_from(["a", "b"]), pool_only=st.booleans(),
    )
    def create(self, data: st.DataObject, price: int, callback: bool, key: str | None, pool_only: bool) -> None:
        account_id = data.draw(st.sampled_from(self.accounts))
        before = self.run(self.store.read(lambda r: r.get_balance(account_id)))
        assert before is not None
        idempotency = IdempotencyKey(key, "h", expired_before=self.now - 3600) if key is not None else None
        new = NewTask(
            task_id=new_id(), account_id=account_id, type=TYPE, params={}, price=price, created_at=self.now,
            deadline_at=self.now + DEADLINE_S, callback_url="https://example.com/h" if callback else None,
            pool_only=pool_only, idempotency=idempotency,
        )
        taken = key is not None and (account_id, key) in self.keys
        try:
            task = self.run(self.store.create_task(new))
        except IdempotencyKeyTaken:
            assert taken
            return
        assert not taken or before.available < price  # a short balance is checked first
        if before.available < price:
            assert task is None
            return
        assert task is not None and task.id == new.task_id
        self.status[task.id] = TaskStatus.PENDING
        self.attempts[task.id] = 0
        self.deadline[task.id] = new.deadline_at
        self.pool_only[task.id] = pool_only
        self.account[task.id] = account_id
        if key is not None:
            self.keys[(account_id, key)] = task.id

    # Two owners only: a worker often claims again a task whose earlier lease of its own expired,
    # and only the attempt tells the two leases apart.
    @rule(
        limit=st.integers(1, 4), builtin_only=st.booleans(), owner=st.sampled_from(["w1", "w2"]),
        cap=st.sampled_from([0, 1, 2]),
    )
    def claim(self, limit: int, builtin_only: bool, owner: str, cap: int) -> None:
        claimed = self.run(self.store.claim_tasks(
            [TYPE], owner, limit, LEASE_S, self.now, builtin_only=builtin_only, max_running_per_account=cap
        ))
        assert len(claimed) <= limit
        for c in claimed:
            assert self.status[c.task.id] is TaskStatus.PENDING, "claimed a task that was not pending"
            assert not (builtin_only and self.pool_only[c.task.id]), "a built-in worker claimed a pool's task"
            self.attempts[c.task.id] += 1
            assert c.attempt == self.attempts[c.task.id]
            self.status[c.task.id] = TaskStatus.RUNNING
            self.lease[c.task.id] = (owner, c.attempt, self.now + LEASE_S)
            self.claims.append(c)
        running = self._running_by_account()
        # Another claim under a higher cap (or none) may have left an account above this one.
        took = {self.account[c.task.id] for c in claimed}
        assert not cap or all(running[a] <= cap for a in took), "a claim took an account past its in-flight cap"
        if len(claimed) < limit:
            left = [
                t for t, s in self.status.items()
                if s is TaskStatus.PENDING and not (builtin_only and self.pool_only[t])
                and not (cap and running.get(self.account[t], 0) >= cap)
            ]
            assert left == [], "a claim left claimable tasks behind"

    def _running_by_account(self) -> dict[str, int]:
        running: dict[str, int] = {}
        for task_id in self.lease:
            running[self.account[task_id]] = running.get(self.account[task_id], 0) + 1
        return running

    def _holds(self, c: ClaimedTask) -> bool:
        lease = self.lease.get(c.task.id)
        return lease is not None and lease[:2] == (c.lease_owner, c.attempt)

    @precondition(lambda self: self.claims)
    @rule(data=st.data())
    def complete(self, data: st.DataObject) -> None:
        batch = data.draw(st.lists(st.sampled_from(self.claims), min_size=1, max_size=4))
        expected = {c.task.id for c in batch if self._holds(c)}
        items = [Completion(c.task.id, c.lease_owner, c.attempt, {"token": "t"}) for c in batch]
        done = self.run(self.store.complete_tasks(items, self.now))
        assert sorted(t.id for t in done) == sorted(expected)
        for task in done:
            assert task.status is TaskStatus.COMPLETED and task.cost == task.price
            self._ended(task.id, TaskStatus.COMPLETED)

    @precondition(lambda self: self.claims)
    @rule(data=st.data(), charged=st.booleans())
    def reject(self, data: st.DataObject, charged: bool) -> None:
        c = data.draw(st.sampled_from(self.claims))
        holds = self._holds(c)
        rejection = Rejection("captcha_unsolvable" if charged else "general_error", "no", charged)
        ended = self.run(self.store.reject_task(c.task.id, rejection, self.now, fence=(c.lease_owner, c.attempt)))
        assert (ended is not None) == holds
        if ended is not None:
            assert ended.cost == (ended.price if charged else 0)
            self._ended(ended.id, TaskStatus.REJECTED)

    @precondition(lambda self: self.status)
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        task_id = data.draw(st.sampled_from(sorted(self.status)))
        live = not self.status[task_id].terminal
        ended = self.run(self.store.reject_task(task_id, Rejection("cancelled", "c", False), self.now))
        assert (ended is not None) == live
        if ended is not None:
            self._ended(task_id, TaskStatus.REJECTED)

    @rule(seconds=st.sampled_from([1.0, LEASE_S + 1]))
    def time_passes(self, seconds: float) -> None:
        """The reaper's pass after ``seconds``: expired leases back to the queue (or rejected on
        their last attempt), then live tasks past their deadline rejected."""
        self.now += seconds
        now = self.now
        expired = {t for t, (_, _, expires) in self.lease.items() if expires < now}
        requeued = self.run(self.store.write(lambda tx: leases.requeue_expired_leases(tx, now, MAX_ATTEMPTS, 500)))
        assert set(requeued) == {t for t in expired if self.attempts[t] < MAX_ATTEMPTS}
        for task_id in requeued:
            self.status[task_id] = TaskStatus.PENDING
            del self.lease[task_id]
        exhausted = self.run(self.store.read(lambda r: leases.exhausted_leases(r, now, MAX_ATTEMPTS, 500)))
        assert {c.task.id for c in exhausted} == expired - set(requeued)
        lost = Rejection("worker_lost", "lost", charged=False)
        for c in exhausted:
            ended = self.run(self.store.reject_task(c.task.id, lost, now, fence=(c.lease_owner, c.attempt)))
            assert ended is not None
            self._ended(c.task.id, TaskStatus.REJECTED)
        timeout = Rejection("solve_timeout", "late", charged=False)
        overdue = self.run(self.store.reject_overdue(timeout, now, 500))
        assert {t.id for t in overdue} == {t for t in self._live() if self.deadline[t] < now}
        for task in overdue:
            self._ended(task.id, TaskStatus.REJECTED)

    @precondition(lambda self: self.lease)
    @rule(owner=st.sampled_from(["w1", "w2"]))
    def lease_lost_and_claimed_again(self, owner: str) -> None:
        """A worker stalls past its lease, the reaper requeues its tasks, and a worker (itself,
        maybe) claims them again: its earlier claims are now stale and must be refused."""
        self.time_passes(LEASE_S + 1)
        self.claim(4, False, owner, 0)

    @invariant()
    def books_balance(self) -> None:
        self.run(assert_books_balance(self.store))


def _check(url: str) -> None:
    machine = type("Machine", (QueueAndBooks,), {"url": url})
    run_state_machine_as_test(machine, settings=SETTINGS)


def test_invariants_on_sqlite(sqlite_url: str) -> None:
    _check(sqlite_url)


def test_invariants_on_postgresql(postgres_url: str) -> None:
    _check(postgres_url)
