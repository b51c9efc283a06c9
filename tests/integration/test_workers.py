"""Remote worker pools over HTTP: registration, per-type capacity, long-poll leases, heartbeats,
fenced completion (409 lease_lost), lease expiry and the attempt limit."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx

from cracker.domain.accounts import Scope
from cracker.domain.clock import rfc3339
from cracker.domain.workers import WorkerKind
from cracker.service.workers import ReapReport
from cracker.store import leases
from tests.clock import ManualClock
from tests.conftest import TURNSTILE_PASS, Api, wait_terminal

REAL_TURNSTILE = {"url": "https://shop.example", "site_key": "0x4AAAAAAAreal"}
TEST_TURNSTILE = {"url": "https://shop.example", "site_key": TURNSTILE_PASS}
#: A reaper interval no test reaches: the lease tests run each reaper pass themselves, on their clock.
_PARKED_S = 3600.0


@contextlib.asynccontextmanager
async def worker_client(api: Api) -> AsyncIterator[httpx.AsyncClient]:
    """A worker-scoped client; the pools it registered are deregistered when it closes, so that
    tests later in the session (on the shared app) see no capacity left behind."""
    account_id, _ = await api.account("0")
    issued = await api.runtime.accounts.create_key(account_id, Scope.WORKER)
    async with api.client(issued.api_key) as client:
        try:
            yield client
        finally:
            at = api.runtime.worker_service.clock()  # the app's clock: a test may have moved it
            registered = await api.runtime.store.read(lambda r: leases.live_workers(r, at))
            for worker in registered:
                if worker.account_id == account_id:
                    await api.runtime.worker_service.deregister(worker.id)


async def register(pool: httpx.AsyncClient, types: list[str], **extra: Any) -> dict[str, Any]:
    response = await pool.post("/v2/workers", json={"name": "pool", "types": types, **extra})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def lease(pool: httpx.AsyncClient, worker_id: str, **body: Any) -> list[dict[str, Any]]:
    response = await pool.post(f"/v2/workers/{worker_id}/lease", json=body)
    assert response.status_code == 200, response.text
    tasks: list[dict[str, Any]] = response.json()["tasks"]
    return tasks


async def test_a_real_site_key_needs_a_live_pool_and_only_the_pool_leases_it(api_factory) -> None:  # type: ignore[no-untyped-def]
    async with api_factory() as api:
        async with await api.client_for("1.00") as client, worker_client(api) as pool:
            refused = await client.post("/v2/tasks/turnstile", json=REAL_TURNSTILE)
            assert refused.json()["error"]["code"] == "no_solver_available"
            worker = await register(pool, ["turnstile", "cf-clearance"], concurrency=5)
            assert worker["types"] == ["cf-clearance", "turnstile"]
            assert worker["heartbeat_interval_s"] < worker["lease_s"]
            created = await client.post("/v2/tasks/turnstile", json=REAL_TURNSTILE)
            assert created.status_code == 201, created.text
            task_id = created.json()["task_id"]
            await asyncio.sleep(0.3)  # the in-process built-in worker must leave it alone
            assert (await client.get(f"/v2/tasks/{task_id}")).json()["status"] == "pending"
            (leased,) = await lease(pool, worker["worker_id"], max_tasks=10)
            assert (leased["task_id"], leased["type"], leased["attempt"]) == (task_id, "turnstile", 1)
            assert leased["params"] == REAL_TURNSTILE
            done = await pool.post(
                f"/v2/workers/{worker['worker_id']}/tasks/{task_id}/complete",
                json={"attempt": 1, "solution": {"token": "0.real-token", "took_ms": 3100}},
            )
            assert done.json() == {"task_id": task_id, "status": "completed"}
            task = await wait_terminal(client, task_id)
            balance = (await client.get("/v2/balance")).json()
            metrics = (await api.client().get("/metrics")).text  # while the pool is registered
    assert task["solution"] == {"token": "0.real-token", "took_ms": 3100}
    assert (task["cost"], balance["balance"], balance["held"]) == ("0.0009", "0.9991", "0.0000")
    assert 'cracker_workers_available{type="cf-clearance"} 5.0' in metrics


async def test_worker_routes_need_a_worker_key(api: Api) -> None:
    async with await api.client_for() as client:
        response = await client.post("/v2/workers", json={"name": "x", "types": ["turnstile"]})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "insufficient_scope"


async def test_unknown_types_and_codes_are_validation_errors(api: Api) -> None:
    async with worker_client(api) as pool:
        bad = await pool.post("/v2/workers", json={"name": "x", "types": ["turnstile", "nope"]})
        worker = await register(pool, ["vercel"])
        reject = await pool.post(
            f"/v2/workers/{worker['worker_id']}/tasks/01a2224a-e959-714c-b639-5aa078b68e34/reject",
            json={"attempt": 1, "code": "cancelled"},
        )
    assert bad.status_code == 422
    assert bad.json()["error"]["details"][0]["field"] == "types.1"
    assert reject.status_code == 422
    assert reject.json()["error"]["details"][0]["field"] == "code"


async def test_another_accounts_worker_is_not_found(api: Api) -> None:
    async with worker_client(api) as mine, worker_client(api) as theirs:
        worker = await register(mine, ["vercel"])
        response = await theirs.post(f"/v2/workers/{worker['worker_id']}/heartbeat")
    assert response.status_code == 404


async def test_lease_long_polls_until_a_task_arrives(api_factory) -> None:  # type: ignore[no-untyped-def]
    async with api_factory() as api:
        async with await api.client_for() as client, worker_client(api) as pool:
            worker = await register(pool, ["vercel"])
            waiting = asyncio.create_task(lease(pool, worker["worker_id"], wait=10, max_tasks=5))
            await asyncio.sleep(0.3)
            assert not waiting.done()
            created = await client.post("/v2/tasks/vercel", json={"challenge_token": "abc"})
            leased = await asyncio.wait_for(waiting, 3)
            empty = await lease(pool, worker["worker_id"], wait=0.2)
    assert [t["task_id"] for t in leased] == [created.json()["task_id"]]
    assert empty == []


async def test_a_lost_lease_is_refused_with_409_and_the_task_goes_to_the_next_worker(api_factory) -> None:  # type: ignore[no-untyped-def]
    """A lease that ran out (no heartbeat) goes back to the queue at the reaper's next pass, and the
    worker that lost it gets 409 lease_lost for its late answer: the lease expiry and the fence.
    On the test's clock: the lease runs out when the test moves the clock past it, not after a
    sleep that a busy machine can stretch; the periodic reaper is parked, the test runs the pass."""
    clock = ManualClock()
    async with api_factory(lease_s=1, reaper_interval_s=_PARKED_S, clock=clock) as api:
        async with await api.client_for("1.00") as client, worker_client(api) as pool:
            slow = await register(pool, ["vercel"])
            fast = await register(pool, ["vercel"])
            task_id = (await client.post("/v2/tasks/vercel", json={"challenge_token": "abc"})).json()["task_id"]
            (first,) = await lease(pool, slow["worker_id"])
            clock.advance(0.9)  # still inside the lease: nothing to reap
            before_expiry = await api.runtime.worker_service.reap()
            clock.advance(0.2)  # no heartbeat: the lease ran out 0.1 s ago
            after_expiry = await api.runtime.worker_service.reap()
            (second,) = await lease(pool, fast["worker_id"])
            late = await pool.post(
                f"/v2/workers/{slow['worker_id']}/tasks/{task_id}/complete",
                json={"attempt": first["attempt"], "solution": {"token": "late"}},
            )
            on_time = await pool.post(
                f"/v2/workers/{fast['worker_id']}/tasks/{task_id}/complete",
                json={"attempt": second["attempt"], "solution": {"token": "fresh"}},
            )
            task = await wait_terminal(client, task_id)
    assert (before_expiry, after_expiry) == (ReapReport(requeued=0, rejected=0), ReapReport(requeued=1, rejected=0))
    assert (first["attempt"], second["attempt"]) == (1, 2)
    assert late.status_code == 409
    assert late.json()["error"]["code"] == "lease_lost"
    assert on_time.status_code == 200
    assert task["solution"] == {"token": "fresh"}


async def test_heartbeats_keep_a_long_solve_alive(api_factory) -> None:  # type: ignore[no-untyped-def]
    """Each heartbeat moves the worker's leases to one lease from now, so a solve longer than a
    lease is never reaped while its worker beats: 3.6 s of work on the test's clock, three
    leases' worth, with a reaper pass after every beat."""
    clock = ManualClock()
    async with api_factory(lease_s=1, reaper_interval_s=_PARKED_S, clock=clock) as api:
        async with await api.client_for() as client, worker_client(api) as pool:
            worker = await register(pool, ["vercel"])
            task_id = (await client.post("/v2/tasks/vercel", json={"challenge_token": "abc"})).json()["task_id"]
            (leased,) = await lease(pool, worker["worker_id"])
            for _ in range(6):
                clock.advance(0.6)
                beat = (await pool.post(f"/v2/workers/{worker['worker_id']}/heartbeat")).json()
                assert beat["leases"] == [
                    {"task_id": task_id, "attempt": 1, "lease_expires_at": rfc3339(clock() + 1)}
                ]
                assert await api.runtime.worker_service.reap() == ReapReport(requeued=0, rejected=0)
            done = await pool.post(
                f"/v2/workers/{worker['worker_id']}/tasks/{task_id}/complete",
                json={"attempt": leased["attempt"], "solution": {"token": "t"}},
            )
    assert done.status_code == 200


async def test_a_task_whose_workers_keep_dying_is_rejected_worker_lost(api_factory) -> None:  # type: ignore[no-untyped-def]
    """A task whose lease runs out on its last attempt is rejected worker_lost (retryable) and its
    hold released to the cent; on an earlier attempt it is requeued. On the test's clock."""
    clock = ManualClock()
    async with api_factory(lease_s=1, reaper_interval_s=_PARKED_S, max_attempts=2, clock=clock) as api:
        async with await api.client_for("1.00") as client, worker_client(api) as pool:
            worker = await register(pool, ["vercel"])
            task_id = (await client.post("/v2/tasks/vercel", json={"challenge_token": "abc"})).json()["task_id"]
            assert len(await lease(pool, worker["worker_id"])) == 1
            held = (await client.get("/v2/balance")).json()
            clock.advance(1.1)
            first_expiry = await api.runtime.worker_service.reap()
            assert len(await lease(pool, worker["worker_id"])) == 1
            # The pool stops heartbeating (it died): the second and last lease runs out.
            clock.advance(1.1)
            last_expiry = await api.runtime.worker_service.reap()
            task = (await client.get(f"/v2/tasks/{task_id}")).json()
            balance = (await client.get("/v2/balance")).json()
    assert held == {"balance": "0.9991", "held": "0.0009", "currency": "USD"}
    assert (first_expiry, last_expiry) == (ReapReport(requeued=1, rejected=0), ReapReport(requeued=0, rejected=1))
    assert task["status"] == "rejected"
    assert task["error"]["code"] == "worker_lost"
    assert task["error"]["retryable"] is True
    assert balance == {"balance": "1.0000", "held": "0.0000", "currency": "USD"}  # released, nothing left held


async def test_reject_with_a_charged_code_keeps_the_price(api: Api) -> None:
    async with await api.client_for("1.00") as client, worker_client(api) as pool:
        worker = await register(pool, ["cf-clearance"])
        body = {"url": "https://a.example", "challenge_body_b64": "aGk=", "proxy": "http://p.example:8080"}
        task_id = (await client.post("/v2/tasks/cf-clearance", json=body)).json()["task_id"]
        (leased,) = await lease(pool, worker["worker_id"])
        rejected = await pool.post(
            f"/v2/workers/{worker['worker_id']}/tasks/{task_id}/reject",
            json={"attempt": leased["attempt"], "code": "proxy_blocked", "message": "403 from the site"},
        )
        task = await wait_terminal(client, task_id)
    assert rejected.json() == {"task_id": task_id, "status": "rejected"}
    assert task["error"]["code"] == "proxy_blocked"
    assert task["cost"] == "0.0020"


async def test_deregistering_hands_the_tasks_back(api: Api) -> None:
    async with await api.client_for() as client, worker_client(api) as pool:
        worker = await register(pool, ["vercel"])
        task_id = (await client.post("/v2/tasks/vercel", json={"challenge_token": "abc"})).json()["task_id"]
        assert len(await lease(pool, worker["worker_id"])) == 1
        gone = await pool.delete(f"/v2/workers/{worker['worker_id']}")
        after = await pool.post(f"/v2/workers/{worker['worker_id']}/lease", json={})
        status = (await client.get(f"/v2/tasks/{task_id}")).json()["status"]
    assert gone.json() == {"requeued": 1}
    assert after.status_code == 404
    assert status == "pending"


async def test_built_in_types_need_a_live_built_in_worker_when_the_server_runs_none(api_factory) -> None:  # type: ignore[no-untyped-def]
    async with api_factory(in_process_workers=False) as api:
        await api.runtime.worker_service.deregister("tests")  # the idle stand-in of conftest
        async with await api.client_for() as client:
            refused = await client.post("/v2/tasks/turnstile", json=TEST_TURNSTILE)
            # A `cracker worker` process (elsewhere) registers: built-in types are accepted again,
            # still judged by the built-in solvers (a real site key stays refused).
            await api.runtime.worker_service.register(
                kind=WorkerKind.BUILTIN, name="worker-process", types=["turnstile"], concurrency=4
            )
            accepted = await client.post("/v2/tasks/turnstile", json=TEST_TURNSTILE)
            real = await client.post("/v2/tasks/turnstile", json=REAL_TURNSTILE)
    assert refused.json()["error"]["code"] == "no_solver_available"
    assert accepted.status_code == 201
    assert real.json()["error"]["code"] == "no_solver_available"


async def test_the_protocol_is_in_the_openapi_document(api: Api) -> None:
    async with api.client() as client:
        doc = (await client.get("/openapi.json")).json()
    ops = {op["operationId"] for path in doc["paths"].values() for op in path.values()}
    assert {"register_worker", "lease_tasks", "heartbeat_worker", "complete_task", "reject_task",
            "deregister_worker"} <= ops
    complete = doc["paths"]["/v2/workers/{worker_id}/tasks/{task_id}/complete"]["post"]
    assert "409" in complete["responses"]


async def test_an_absurd_attempt_number_is_a_validation_error(api: Api) -> None:
    async with worker_client(api) as client:
        worker = (await client.post("/v2/workers", json={"name": "p", "types": ["turnstile"]})).json()
        response = await client.post(
            f"/v2/workers/{worker['worker_id']}/tasks/01959e02-08fd-7000-8cbe-f682a959b3c1/complete",
            json={"attempt": 10**30, "solution": {"token": "t"}},
        )
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"] == "attempt"


async def test_a_task_that_cannot_be_sent_is_ended_uncharged_and_the_rest_of_the_batch_is_leased(
    api_factory,  # type: ignore[no-untyped-def]
) -> None:
    """A stored task whose parameters the lease answer cannot serialise (an integer beyond 64 bits,
    as creation accepted before numbers were bounded) once made the lease call answer 500 after the
    claim committed: every task of the batch, other accounts' too, stayed running unseen until its
    deadline. Now that task ends ``invalid_params`` (uncharged) and the others are handed out."""
    import json

    from sqlalchemy import update

    from cracker.store.schema import tasks as tasks_table

    async with api_factory() as api:
        async with await api.client_for("1.00") as victim, await api.client_for("1.00") as other, \
                worker_client(api) as pool:
            worker = await register(pool, ["turnstile"], concurrency=5)
            broken = (await victim.post("/v2/tasks/turnstile", json=REAL_TURNSTILE)).json()["task_id"]
            fine = (await other.post("/v2/tasks/turnstile", json=REAL_TURNSTILE)).json()["task_id"]
            params = {**REAL_TURNSTILE, "cdata": "x", "vendor": {"n": 2**70}}

            def corrupt(tx: Any) -> None:
                tx.conn.execute(update(tasks_table).where(tasks_table.c.id == broken).values(params=json.dumps(params)))

            await api.runtime.store.write(corrupt)
            leased = await lease(pool, worker["worker_id"], max_tasks=10)
            ended = await wait_terminal(victim, broken)
            victim_balance = (await victim.get("/v2/balance")).json()
    assert [t["task_id"] for t in leased] == [fine]
    assert ended["status"] == "rejected" and ended["error"]["code"] == "invalid_params"
    assert victim_balance == {"balance": "1.0000", "held": "0.0000", "currency": "USD"}
