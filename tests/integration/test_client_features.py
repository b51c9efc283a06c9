"""Idempotent create, long-poll, cancel and signed webhooks, through the real app."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cracker.domain.workers import Completion
from tests.conftest import TURNSTILE_PASS, Api, free_port, wait_terminal
from tests.timing import within

TURNSTILE = {"url": "https://example.com", "site_key": TURNSTILE_PASS}


# --- idempotency ---


async def test_same_key_same_body_returns_the_original_task_once_charged(api: Api) -> None:
    async with await api.client_for("1.00") as client:
        headers = {"Idempotency-Key": "order-42"}
        first = await client.post("/v2/tasks/turnstile", json=TURNSTILE, headers=headers)
        again = await client.post("/v2/tasks/turnstile", json=TURNSTILE, headers=headers)
        typed = await client.post("/v2/tasks", json={"type": "turnstile", **TURNSTILE}, headers=headers)
        await wait_terminal(client, first.json()["task_id"])
        balance = (await client.get("/v2/balance")).json()
    assert first.status_code == again.status_code == typed.status_code == 201
    assert again.json()["task_id"] == first.json()["task_id"] == typed.json()["task_id"]
    assert "idempotent-replayed" not in first.headers
    assert again.headers["idempotent-replayed"] == "true"
    assert balance == {"balance": "0.9991", "held": "0.0000", "currency": "USD"}


async def test_same_key_other_body_is_refused(api: Api) -> None:
    async with await api.client_for("1.00") as client:
        headers = {"Idempotency-Key": "k-1"}
        await client.post("/v2/tasks/turnstile", json=TURNSTILE, headers=headers)
        other = await client.post("/v2/tasks/turnstile", json={**TURNSTILE, "action": "x"}, headers=headers)
        balance = (await client.get("/v2/balance")).json()
    assert other.status_code == 400
    assert other.json()["error"]["code"] == "invalid_request"
    assert "Idempotency-Key" in other.json()["error"]["message"]
    assert balance["balance"] == "0.9991"


async def test_keys_are_per_account(api: Api) -> None:
    async with await api.client_for() as first, await api.client_for() as second:
        a = await first.post("/v2/tasks/turnstile", json=TURNSTILE, headers={"Idempotency-Key": "shared"})
        b = await second.post("/v2/tasks/turnstile", json=TURNSTILE, headers={"Idempotency-Key": "shared"})
    assert a.json()["task_id"] != b.json()["task_id"]


async def test_concurrent_retries_with_one_key_create_one_task(api: Api) -> None:
    async with await api.client_for("1.00") as client:
        responses = await asyncio.gather(*(
            client.post("/v2/tasks/turnstile", json=TURNSTILE, headers={"Idempotency-Key": "burst"})
            for _ in range(20)
        ))
        await asyncio.sleep(0.2)
        balance = (await client.get("/v2/balance")).json()
    assert Counter(r.status_code for r in responses) == {201: 20}
    assert len({r.json()["task_id"] for r in responses}) == 1
    assert balance["balance"] == "0.9991"


# --- long-poll ---


async def test_long_poll_answers_when_the_task_ends(api_factory) -> None:  # type: ignore[no-untyped-def]
    async with api_factory(in_process_workers=False) as api:
        async with await api.client_for() as client:
            created = (await client.post("/v2/tasks/turnstile", json=TURNSTILE)).json()
            started = time.monotonic()
            poll = asyncio.create_task(client.get(f"/v2/tasks/{created['task_id']}", params={"wait": 20}))
            await asyncio.sleep(0.3)
            assert not poll.done()
            (claim,) = await api.runtime.tasks.claim(["turnstile"], "w", 1, 60)
            await api.runtime.worker_service.complete(
                Completion(claim.task.id, claim.lease_owner, claim.attempt, {"token": "done"})
            )
            answer = await poll
            elapsed = time.monotonic() - started
    assert answer.status_code == 200
    assert answer.json()["status"] == "completed"
    assert 0.3 <= elapsed < within(2.0)


async def test_long_poll_times_out_with_the_current_state(api_factory) -> None:  # type: ignore[no-untyped-def]
    async with api_factory(in_process_workers=False) as api:
        async with await api.client_for() as client:
            created = (await client.post("/v2/tasks/turnstile", json=TURNSTILE)).json()
            started = time.monotonic()
            answer = await client.get(f"/v2/tasks/{created['task_id']}?wait=0.5")
            elapsed = time.monotonic() - started
    assert answer.json()["status"] == "pending"
    assert 0.5 <= elapsed < within(1.5)


@pytest.mark.parametrize("wait", ["-1", "61", "soon", "nan"])
async def test_long_poll_rejects_bad_waits(api: Api, wait: str) -> None:
    async with await api.client_for() as client:
        created = (await client.post("/v2/tasks/turnstile", json=TURNSTILE)).json()
        answer = await client.get(f"/v2/tasks/{created['task_id']}", params={"wait": wait})
    assert answer.status_code == 422
    assert answer.json()["error"]["details"][0]["field"] == "wait"


# --- cancel ---


async def test_cancel_a_pending_task_releases_the_hold(api_factory) -> None:  # type: ignore[no-untyped-def]
    async with api_factory(in_process_workers=False) as api:
        async with await api.client_for("1.00") as client:
            created = (await client.post("/v2/tasks/turnstile", json=TURNSTILE)).json()
            cancelled = await client.delete(f"/v2/tasks/{created['task_id']}")
            again = await client.delete(f"/v2/tasks/{created['task_id']}")
            balance = (await client.get("/v2/balance")).json()
        async with await api.client_for() as stranger:
            foreign = await stranger.delete(f"/v2/tasks/{created['task_id']}")
    assert cancelled.status_code == 200
    body = cancelled.json()
    assert body["status"] == "rejected" and body["error"]["code"] == "cancelled" and body["cost"] == "0.0000"
    assert again.json() == body
    assert balance == {"balance": "1.0000", "held": "0.0000", "currency": "USD"}
    assert foreign.status_code == 404


async def test_cancel_stops_a_running_solve(api: Api) -> None:
    """Cancelling a task that is being solved ends its search in the engine at once (not when the
    search would have found its answer, some seconds later) and frees the pool for the next task."""
    engine = api.runtime.pow_engine
    async with await api.client_for("1.00") as client:
        # 7 zeros: about 2**28 hashes, seconds of work; no chance of finishing before the cancel.
        created = (await client.post("/v2/tasks/pow-sha256", json={"data": "slow", "difficulty": 7})).json()
        for _ in range(250):
            if (await client.get(f"/v2/tasks/{created['task_id']}")).json()["status"] == "running":
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("the task never started running: this test would prove nothing")
        assert engine.active_tasks >= 1  # its search is in the engine
        cancelled = (await client.delete(f"/v2/tasks/{created['task_id']}")).json()
        for _ in range(100):  # the search ends within a chunk, not at its answer
            if engine.active_tasks == 0:
                break
            await asyncio.sleep(0.02)
        stopped = engine.active_tasks
        # The pool is free again: a small proof of work completes at once.
        quick = (await client.post("/v2/tasks/pow-sha256", json={"data": "quick", "difficulty": 2})).json()
        done = await wait_terminal(client, quick["task_id"], timeout=5)
    assert cancelled["status"] == "rejected" and cancelled["error"]["code"] == "cancelled"
    assert stopped == 0, "the cancelled task's search kept running"
    assert done["status"] == "completed"


async def test_a_completed_task_cannot_be_cancelled(api: Api) -> None:
    async with await api.client_for("1.00") as client:
        created = (await client.post("/v2/tasks/turnstile", json=TURNSTILE)).json()
        done = await wait_terminal(client, created["task_id"])
        after = (await client.delete(f"/v2/tasks/{created['task_id']}")).json()
    assert after == done


# --- webhooks ---


@dataclass
class Receiver:
    url: str
    statuses: list[int]
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A real HTTP server that records webhook requests and answers the queued statuses."""
    port = free_port()
    state = Receiver(url=f"http://127.0.0.1:{port}/hook", statuses=[])

    async def hook(request: Request) -> Response:
        state.received.append((dict(request.headers), await request.body()))
        return Response(status_code=state.statuses.pop(0) if state.statuses else 204)

    server = uvicorn.Server(uvicorn.Config(Starlette(routes=[Route("/hook", hook, methods=["POST"])]),
                                           port=port, log_level="warning", lifespan="off"))
    serving = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn exposes only a flag
        await asyncio.sleep(0.01)
    yield state
    server.should_exit = True
    await serving


def verify(secret: str, header: str, body: bytes) -> bool:
    parts = dict(item.split("=", 1) for item in header.split(","))
    expected = hmac.new(secret.encode(), f"{parts['t']}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts["v1"]) and abs(time.time() - int(parts["t"])) < 300


async def test_webhook_is_signed_retried_and_logged(api_factory, receiver: Receiver) -> None:  # type: ignore[no-untyped-def]
    receiver.statuses = [500, 503]  # two failures, then the default 204
    async with api_factory(
        webhook_allow_private=True, webhook_allow_any_port=True, webhook_poll_s=0.05, webhook_backoff_scale=0.01
    ) as api:
        async with await api.client_for() as client:
            secret = (await client.get("/v2/webhooks/secret")).json()["secret"]
            created = (await client.post(
                "/v2/tasks/turnstile", json={**TURNSTILE, "callback_url": receiver.url}
            )).json()
            await wait_terminal(client, created["task_id"])
            for _ in range(200):
                if len(receiver.received) >= 3:
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.2)
            log = (await client.get(f"/v2/tasks/{created['task_id']}/deliveries")).json()
            task = (await client.get(f"/v2/tasks/{created['task_id']}")).json()
    assert len(receiver.received) == 3
    for headers, body in receiver.received:
        assert verify(secret, headers["x-cracker-signature"], body)
        assert json.loads(body) == task
    assert [h["x-cracker-attempt"] for h, _ in receiver.received] == ["1", "2", "3"]
    (delivery,) = log["deliveries"]
    assert delivery["status"] == "delivered" and delivery["url"] == receiver.url
    assert [(a["attempt"], a["status_code"]) for a in delivery["attempts"]] == [(1, 500), (2, 503), (3, 204)]
    # The documented schedule (5 s, then 15 s after a failure), scaled by 0.01: lower bounds, which
    # no machine's slowness can break, and which a zero backoff fails.
    at = [datetime.fromisoformat(a["at"].replace("Z", "+00:00")).timestamp() for a in delivery["attempts"]]
    assert at[1] - at[0] >= 5 * 0.01 * 0.9 and at[2] - at[1] >= 15 * 0.01 * 0.9, at


async def test_a_webhook_that_always_fails_is_given_up_after_a_day(api_factory, receiver: Receiver) -> None:  # type: ignore[no-untyped-def]
    """Retries stop 24 h after the task ended: the delivery is marked ``failed`` with no next attempt
    (the day is made to have passed by moving the delivery's creation back, not by waiting)."""
    from sqlalchemy import update

    from cracker.store.schema import webhook_deliveries

    receiver.statuses = [500] * 100
    async with api_factory(
        webhook_allow_private=True, webhook_allow_any_port=True, webhook_poll_s=0.05, webhook_backoff_scale=0.01
    ) as api:
        async with await api.client_for() as client:
            created = (await client.post(
                "/v2/tasks/turnstile", json={**TURNSTILE, "callback_url": receiver.url}
            )).json()
            await wait_terminal(client, created["task_id"])
            for _ in range(200):
                if receiver.received:
                    break
                await asyncio.sleep(0.02)

            def a_day_ago(tx: Any) -> None:
                tx.conn.execute(update(webhook_deliveries).where(webhook_deliveries.c.task_id == created["task_id"])
                                .values(created_at=time.time() - 24 * 3600))

            await api.runtime.store.write(a_day_ago)
            for _ in range(200):
                log = (await client.get(f"/v2/tasks/{created['task_id']}/deliveries")).json()
                if log["deliveries"][0]["status"] != "pending":
                    break
                await asyncio.sleep(0.05)
            sent = len(receiver.received)
            await asyncio.sleep(0.5)  # several schedule steps at this scale: nothing more is sent
    (delivery,) = log["deliveries"]
    assert delivery["status"] == "failed" and delivery["next_attempt_at"] is None
    assert len(delivery["attempts"]) >= 2 and all(a["status_code"] == 500 for a in delivery["attempts"])
    assert len(receiver.received) == sent


async def test_callbacks_to_private_addresses_are_refused_by_default(api: Api) -> None:
    async with await api.client_for() as client:
        for url in ("http://127.0.0.1:9/hook", "http://169.254.169.254/latest", "http://10.0.0.5/x",
                    "http://localhost:8000/x", "http://[::1]/x", "http://metadata.google.internal/"):
            response = await client.post("/v2/tasks/turnstile", json={**TURNSTILE, "callback_url": url})
            assert response.status_code == 422, url
            assert response.json()["error"]["details"][0]["field"] == "callback_url"
        bad_scheme = await client.post("/v2/tasks/turnstile", json={**TURNSTILE, "callback_url": "file:///etc"})
    assert bad_scheme.status_code == 422


async def test_a_name_resolving_to_a_private_address_is_refused_at_delivery(api_factory) -> None:  # type: ignore[no-untyped-def]
    # "localtest.me"-style names cannot be relied on offline; a name the resolver maps to
    # loopback is: the machine's own hostname through /etc/hosts.
    import socket

    host = socket.gethostname()
    if not any(info[4][0].startswith("127.") for info in socket.getaddrinfo(host, 80)):
        pytest.skip("this machine's hostname does not resolve to loopback")
    async with api_factory(webhook_poll_s=0.05, webhook_backoff_scale=0.01) as api:
        async with await api.client_for() as client:
            created = (await client.post(
                "/v2/tasks/turnstile", json={**TURNSTILE, "callback_url": f"http://{host}/hook"}
            )).json()
            await wait_terminal(client, created["task_id"])
            for _ in range(100):
                log = (await client.get(f"/v2/tasks/{created['task_id']}/deliveries")).json()
                if log["deliveries"] and log["deliveries"][0]["attempts"]:
                    break
                await asyncio.sleep(0.05)
    attempt = log["deliveries"][0]["attempts"][0]
    assert attempt["status_code"] is None
    # The same words as any failed connection: the log is no probe of the internal network.
    assert attempt["error"] == "connection failed"
