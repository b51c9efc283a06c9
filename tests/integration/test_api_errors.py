"""Every API error code is produced by a real request, with its exact status, flags and envelope."""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from cracker.domain.accounts import Scope
from cracker.domain.catalogue import CATALOGUE
from cracker.store.schema import tasks
from tests.conftest import TURNSTILE_PASS, Api

TURNSTILE = {"url": "https://example.com/login", "site_key": TURNSTILE_PASS}
UUID7 = r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"


def assert_envelope(response: httpx.Response, code: str) -> dict[str, Any]:
    import re

    spec = CATALOGUE[code]
    assert response.status_code == spec.http_status, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert set(error) == {"code", "message", "retryable", "doc_url", "request_id", "details"}
    assert error["code"] == code
    assert error["retryable"] is spec.retryable
    assert error["doc_url"].endswith("/errors/" + code.replace("_", "-"))
    assert re.match(UUID7, error["request_id"])
    assert response.headers["x-request-id"] == error["request_id"]
    assert isinstance(error["message"], str) and error["message"]
    assert "Traceback" not in response.text
    if code == "validation_failed":
        assert isinstance(error["details"], list) and error["details"]
    else:
        assert error["details"] is None
    result: dict[str, Any] = error
    return result


async def test_missing_api_key(api: Api) -> None:
    async with api.client() as client:
        assert_envelope(await client.get("/v2/balance"), "missing_api_key")
        assert_envelope(await client.post("/v2/tasks/turnstile", json=TURNSTILE), "missing_api_key")


async def test_invalid_api_key(api: Api) -> None:
    async with api.client("ck_not-a-real-key") as client:
        assert_envelope(await client.get("/v2/balance"), "invalid_api_key")


async def test_bearer_header_is_accepted(api: Api) -> None:
    _, key = await api.account()
    async with api.client() as client:
        response = await client.get("/v2/balance", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200


async def test_insufficient_scope_for_a_worker_key(api: Api) -> None:
    account_id, _ = await api.account()
    worker = await api.runtime.accounts.create_key(account_id, Scope.WORKER)
    async with api.client(worker.api_key) as client:
        error = assert_envelope(await client.post("/v2/tasks/turnstile", json=TURNSTILE), "insufficient_scope")
        assert "worker" in error["message"]
    admin = await api.runtime.accounts.create_key(account_id, Scope.ADMIN)
    async with api.client(admin.api_key) as client:
        assert (await client.get("/v2/balance")).status_code == 200


async def test_validation_failed_names_each_field(api: Api) -> None:
    async with await api.client_for() as client:
        response = await client.post("/v2/tasks/turnstile", json={"url": "ftp://nope", "colour": "red"})
    error = assert_envelope(response, "validation_failed")
    details = {d["field"]: d["code"] for d in error["details"]}
    assert details == {"url": "string_pattern_mismatch", "site_key": "missing", "colour": "extra_forbidden"}
    assert error["message"] == "3 field(s) failed validation"


async def test_invalid_request_for_malformed_json(api: Api) -> None:
    async with await api.client_for() as client:
        response = await client.post(
            "/v2/tasks/turnstile", content=b'{"url": ', headers={"content-type": "application/json"}
        )
        assert_envelope(response, "invalid_request")
        response = await client.post("/v2/tasks/turnstile", json=["not", "an", "object"])
        assert_envelope(response, "invalid_request")


async def test_not_found_for_unknown_and_foreign_tasks_and_routes(api: Api) -> None:
    async with await api.client_for() as owner:
        created = (await owner.post("/v2/tasks/turnstile", json=TURNSTILE)).json()
    async with await api.client_for() as other:
        foreign = await other.get(f"/v2/tasks/{created['task_id']}")
        unknown = await other.get("/v2/tasks/01959e02-08fd-7000-8cbe-f682a959b3c1")
        route = await other.get("/v2/nothing-here")
    assert_envelope(foreign, "not_found")
    assert_envelope(unknown, "not_found")
    assert foreign.json()["error"]["message"] == unknown.json()["error"]["message"].replace(
        "01959e02-08fd-7000-8cbe-f682a959b3c1", created["task_id"]
    )
    assert_envelope(route, "not_found")


async def test_offer_not_found(api: Api) -> None:
    async with await api.client_for() as client:
        assert_envelope(await client.post("/v2/tasks/no-such-type", json={}), "offer_not_found")
        assert_envelope(await client.post("/v2/tasks", json={"type": "no-such-type"}), "offer_not_found")


async def test_offer_not_found_when_an_offer_is_withdrawn(api_factory) -> None:  # type: ignore[no-untyped-def]
    async with api_factory() as api:
        await api.runtime.offers.set("vercel", 9, enabled=False)
        async with await api.client_for() as client:
            response = await client.post("/v2/tasks/vercel", json={"challenge_token": "abc"})
            offers = (await client.get("/v2/offers")).json()["offers"]
    assert_envelope(response, "offer_not_found")
    assert "vercel" not in {o["type"] for o in offers}


async def test_insufficient_balance(api: Api) -> None:
    async with await api.client_for(balance="0.0008") as client:
        assert_envelope(await client.post("/v2/tasks/turnstile", json=TURNSTILE), "insufficient_balance")
        assert (await client.get("/v2/balance")).json() == {"balance": "0.0008", "held": "0.0000", "currency": "USD"}


async def test_rate_limit_exceeded_with_retry_after(api_factory) -> None:  # type: ignore[no-untyped-def]
    async with api_factory(rate_limit_per_s=0.5, rate_limit_burst=3) as api:
        async with await api.client_for() as client:
            statuses = [(await client.get("/v2/balance")).status_code for _ in range(3)]
            limited = await client.get("/v2/balance")
    assert statuses == [200, 200, 200]
    assert_envelope(limited, "rate_limit_exceeded")
    assert limited.headers["Retry-After"] == "2"


async def test_internal_error_hides_the_failure(api: Api) -> None:
    async with await api.client_for() as client:
        created = (await client.post("/v2/tasks/turnstile", json=TURNSTILE)).json()
        # Break the stored row behind the server's back (a status no code writes): reading it
        # now fails unexpectedly. The row is inert for the queue, which claims pending tasks only.
        def corrupt(tx: Any) -> None:
            tx.conn.execute(update(tasks).where(tasks.c.id == created["task_id"]).values(status="bogus"))

        await api.runtime.store.write(corrupt)
        response = await client.get(f"/v2/tasks/{created['task_id']}")
    error = assert_envelope(response, "internal_error")
    assert error["message"] == "Internal server error"


@pytest.mark.sqlite_only
async def test_service_unavailable_when_the_database_is_locked(api_factory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    async with api_factory(sqlite_busy_timeout_ms=100, in_process_workers=False) as api:
        async with await api.client_for() as client:
            lock = sqlite3.connect(tmp_path / "cracker.db", isolation_level=None)
            lock.execute("BEGIN EXCLUSIVE")
            try:
                response = await client.post("/v2/tasks/turnstile", json=TURNSTILE)
            finally:
                lock.execute("ROLLBACK")
                lock.close()
            after = await client.post("/v2/tasks/turnstile", json=TURNSTILE)
    assert_envelope(response, "service_unavailable")
    assert after.status_code == 201


async def test_method_not_allowed(api: Api) -> None:
    async with api.client() as client:
        response = await client.delete("/v2/health")
    assert_envelope(response, "method_not_allowed")
    assert response.headers["allow"] == "GET"


async def test_payload_too_large(api_factory) -> None:  # type: ignore[no-untyped-def]
    async with api_factory(max_body_bytes=4096) as api:
        async with await api.client_for() as client:
            declared = await client.post("/v2/tasks/vercel", json={"challenge_token": "x" * 10_000})

            async def stream() -> Any:  # no Content-Length: the limit is enforced while reading
                for _ in range(10):
                    yield b"x" * 1024

            streamed = await client.post(
                "/v2/tasks/vercel", content=stream(), headers={"content-type": "application/json"}
            )
    assert_envelope(declared, "payload_too_large")
    assert_envelope(streamed, "payload_too_large")


async def test_no_solver_available_for_a_real_site_key(api: Api) -> None:
    async with await api.client_for() as client:
        response = await client.post(
            "/v2/tasks/turnstile", json={"url": "https://example.com", "site_key": "0x4AAAAAAAreal"}
        )
        balance = (await client.get("/v2/balance")).json()
    assert_envelope(response, "no_solver_available")
    assert balance["held"] == "0.0000" and balance["balance"] == "10.0000"


@pytest.mark.parametrize("path", ["/v2/balance", "/v2/health", "/nope", "/v2/errors", "/metrics"])
async def test_every_response_has_a_request_id(api: Api, path: str) -> None:
    async with api.client() as client:
        responses = await asyncio.gather(*(client.get(path) for _ in range(3)))
    ids = {r.headers["x-request-id"] for r in responses}
    assert len(ids) == 3
