"""Rules of the task and account services that no HTTP-level test pinned (found by the mutation
run, bench/mutation.py): a long-poll wakes on its task's end, not on the next fallback poll, and
answers an ended task at once; the demo account is found by name, the oldest of that name."""

from __future__ import annotations

import asyncio
import time

import pytest

from cracker.domain.accounts import Scope
from cracker.domain.errors import InvalidApiKey, RateLimitExceeded
from cracker.domain.tasks import TaskStatus
from cracker.domain.workers import Completion
from cracker.store import Rejection
from tests.conftest import TURNSTILE_PASS
from tests.timing import within

TURNSTILE = {"url": "https://a.example", "site_key": TURNSTILE_PASS}


async def test_a_long_poll_wakes_when_its_task_ends_not_at_the_next_fallback_poll(api_factory) -> None:  # type: ignore[no-untyped-def]
    """The waiter watches its own task's end: it answers within a fraction of the 1 s fallback
    poll after the completion commits (with the watch on another task it would wait for the poll)."""
    async with api_factory(in_process_workers=False) as api:
        account_id, key = await api.account("1.00")
        async with api.client(key) as client:
            task_id = (await client.post("/v2/tasks/turnstile", json=TURNSTILE)).json()["task_id"]
        waiting = asyncio.create_task(api.runtime.tasks.wait(account_id, task_id, 20))
        await asyncio.sleep(0.05)  # the waiter has read the task (pending) and waits on its watch
        assert not waiting.done()
        (claim,) = await api.runtime.tasks.claim(["turnstile"], "w", 1, 60)
        await api.runtime.worker_service.complete(
            Completion(claim.task.id, claim.lease_owner, claim.attempt, {"token": "done"})
        )
        ended = time.monotonic()
        view = await waiting
        woke_after = time.monotonic() - ended
    assert view.status is TaskStatus.COMPLETED
    assert woke_after < within(0.5)


async def test_a_long_poll_on_an_ended_task_answers_at_once(api_factory) -> None:  # type: ignore[no-untyped-def]
    """A task that already ended is read first and answered, not waited on for the fallback poll
    (the skipped first read is only for a task this process knows is still live)."""
    async with api_factory(in_process_workers=False) as api:
        account_id, key = await api.account("1.00")
        async with api.client(key) as client:
            task_id = (await client.post("/v2/tasks/turnstile", json=TURNSTILE)).json()["task_id"]
            await client.delete(f"/v2/tasks/{task_id}")
        started = time.monotonic()
        view = await api.runtime.tasks.wait(account_id, task_id, 20)
        elapsed = time.monotonic() - started
    assert (view.status, view.error_code) == (TaskStatus.REJECTED, "cancelled")
    assert elapsed < within(0.5)


async def test_the_demo_key_reuses_the_oldest_account_of_its_name(api_factory) -> None:  # type: ignore[no-untyped-def]
    """``cracker demo`` creates its account once, with the balance given, and later runs issue
    keys for that same account; of two accounts with one name the oldest is the one found."""
    async with api_factory(in_process_workers=False) as api:
        accounts = api.runtime.accounts
        first, created = await accounts.demo_key("demo", 50_000)
        again, created_again = await accounts.demo_key("demo", 70_000)
        other, other_created = await accounts.demo_key("other", 10_000)
        older = await accounts.create_account("twin", 0)
        await accounts.create_account("twin", 0)
        twin, twin_created = await accounts.demo_key("twin", 10_000)
        balance = await api.runtime.store.read(lambda r: r.get_balance(first.account_id))
    assert (created, created_again, other_created, twin_created) == (True, False, True, False)
    assert again.account_id == first.account_id and again.api_key != first.api_key
    assert other.account_id != first.account_id
    assert twin.account_id == older.account_id
    assert balance is not None and (balance.available, balance.held) == (50_000, 0)


async def test_a_long_poll_shorter_than_the_fallback_poll_ends_on_time(api_factory) -> None:  # type: ignore[no-untyped-def]
    """``wait`` is the client's bound: a 0.2 s long-poll on a live task answers after 0.2 s (its
    state then), not after the 1 s fallback poll, and leaves no watch behind in the notifier."""
    async with api_factory(in_process_workers=False) as api:
        account_id, key = await api.account("1.00")
        async with api.client(key) as client:
            task_id = (await client.post("/v2/tasks/turnstile", json=TURNSTILE)).json()["task_id"]
        started = time.monotonic()
        view = await api.runtime.tasks.wait(account_id, task_id, 0.2)
        elapsed = time.monotonic() - started
        watching = task_id in api.runtime.notifier._finished  # the waiter's event, if it leaked
    assert view.status is TaskStatus.PENDING
    assert 0.2 <= elapsed < within(0.7)
    assert not watching


async def test_a_long_poll_waits_its_whole_time_for_a_live_task(api_factory) -> None:  # type: ignore[no-untyped-def]
    """A long-poll answers a live task only when its time is up (a lower bound: slowness cannot
    break it), not at the last fallback poll before it."""
    async with api_factory(in_process_workers=False) as api:
        account_id, key = await api.account("1.00")
        async with api.client(key) as client:
            task_id = (await client.post("/v2/tasks/turnstile", json=TURNSTILE)).json()["task_id"]
        started = time.monotonic()
        view = await api.runtime.tasks.wait(account_id, task_id, 1.5)
        elapsed = time.monotonic() - started
    assert view.status is TaskStatus.PENDING
    assert elapsed >= 1.5


async def test_an_end_nobody_announced_is_found_by_the_fallback_poll_within_a_second(api_factory) -> None:  # type: ignore[no-untyped-def]
    """An end whose notification never comes (another process ended the task, and SQLite has no
    NOTIFY) is found by the waiter's own poll, once a second: here the task is ended in the store
    directly, as another process would."""
    async with api_factory(in_process_workers=False) as api:
        account_id, key = await api.account("1.00")
        async with api.client(key) as client:
            task_id = (await client.post("/v2/tasks/turnstile", json=TURNSTILE)).json()["task_id"]
        waiting = asyncio.create_task(api.runtime.tasks.wait(account_id, task_id, 20))
        await asyncio.sleep(0.05)
        rejection = Rejection(code="general_error", message="ended elsewhere", charged=False)
        assert await api.runtime.store.reject_task(task_id, rejection, time.time()) is not None
        ended = time.monotonic()
        view = await waiting
        found_after = time.monotonic() - ended
    assert (view.status, view.error_code) == (TaskStatus.REJECTED, "general_error")
    assert found_after < within(1.5)


async def test_the_before_lookup_hook_runs_only_for_a_key_not_known_valid(api) -> None:  # type: ignore[no-untyped-def]
    """The address limit (``before_lookup``) is paid before a database read, and only by a key the
    cache does not vouch for: a made-up key pays it every time; a key found valid moments ago skips
    it; a hook that refuses stops the lookup (the key is not found valid, so it is not cached)."""
    _, key = await api.account("1.00")
    calls: list[str] = []
    accounts = api.runtime.accounts

    def hook() -> None:
        calls.append("looked up")

    for _ in range(2):
        with pytest.raises(InvalidApiKey):
            await accounts.authenticate("sk_" + "x" * 43, Scope.CLIENT, before_lookup=hook)
    assert calls == ["looked up", "looked up"]

    def refuse() -> None:
        raise RateLimitExceeded(1.0)

    with pytest.raises(RateLimitExceeded):
        await accounts.authenticate(key, Scope.CLIENT, before_lookup=refuse)
    record = await accounts.authenticate(key, Scope.CLIENT, before_lookup=hook)
    assert calls == ["looked up", "looked up", "looked up"]
    assert (await accounts.authenticate(key, Scope.CLIENT, before_lookup=refuse)) == record
