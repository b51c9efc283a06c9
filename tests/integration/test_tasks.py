"""The task routes end to end: creation per type, the envelope, the sandbox and pow-sha256 solvers."""

from __future__ import annotations

import hashlib
import re
from typing import Any

import pytest

from tests.clock import ManualClock
from tests.conftest import HCAPTCHA_KEY, RECAPTCHA_V2_KEY, TURNSTILE_FAIL, TURNSTILE_PASS, Api, wait_terminal

ENVELOPE_FIELDS = {"task_id", "type", "status", "solution", "error", "cost", "created_at", "started_at",
                   "completed_at"}
RFC3339_MS = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$"
PAGE_B64 = "PGh0bWw+PC9odG1sPg=="  # <html></html>


async def test_create_answers_201_pending_envelope_with_location(api: Api) -> None:
    async with await api.client_for() as client:
        response = await client.post(
            "/v2/tasks/turnstile", json={"url": "https://example.com", "site_key": TURNSTILE_PASS}
        )
    assert response.status_code == 201
    body = response.json()
    assert set(body) == ENVELOPE_FIELDS
    assert response.headers["location"] == f"/v2/tasks/{body['task_id']}"
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", body["task_id"])
    assert body["status"] == "pending" and body["type"] == "turnstile"
    assert body["solution"] is None and body["error"] is None and body["cost"] is None
    assert re.match(RFC3339_MS, body["created_at"])
    assert body["started_at"] is None and body["completed_at"] is None


async def test_sandbox_turnstile_pass_key_completes_with_the_dummy_token(api: Api) -> None:
    async with await api.client_for() as client:
        created = (await client.post(
            "/v2/tasks/turnstile", json={"url": "https://example.com", "site_key": TURNSTILE_PASS, "action": "login"}
        )).json()
        done = await wait_terminal(client, created["task_id"])
    assert done["status"] == "completed"
    assert done["solution"] == {"token": "XXXX.DUMMY.TOKEN.XXXX"}
    assert done["error"] is None
    assert done["cost"] == "0.0009"
    assert re.match(RFC3339_MS, done["started_at"]) and re.match(RFC3339_MS, done["completed_at"])
    assert done["created_at"] <= done["started_at"] <= done["completed_at"]


async def test_sandbox_turnstile_fail_key_is_rejected_and_refunded(api: Api) -> None:
    async with await api.client_for() as client:
        created = (await client.post(
            "/v2/tasks/turnstile", json={"url": "https://example.com", "site_key": TURNSTILE_FAIL}
        )).json()
        done = await wait_terminal(client, created["task_id"])
        balance = (await client.get("/v2/balance")).json()
    assert done["status"] == "rejected" and done["solution"] is None
    assert done["error"]["code"] == "challenge_error"
    assert done["error"]["retryable"] is False
    assert done["error"]["doc_url"].endswith("/errors/challenge-error")
    assert done["cost"] == "0.0000"
    assert balance == {"balance": "10.0000", "held": "0.0000", "currency": "USD"}


@pytest.mark.parametrize(
    ("path", "fields", "token"),
    [
        ("hcaptcha", {"url": "https://a.example", "site_key": HCAPTCHA_KEY}, "10000000-aaaa-bbbb-cccc-000000000001"),
        ("noname", {"url": "https://a.example", "site_key": HCAPTCHA_KEY}, "10000000-aaaa-bbbb-cccc-000000000001"),
        ("recaptcha-v2", {"url": "https://a.example", "site_key": RECAPTCHA_V2_KEY}, None),
    ],
)
async def test_sandbox_token_types(api: Api, path: str, fields: dict[str, Any], token: str | None) -> None:
    async with await api.client_for() as client:
        created = await client.post(f"/v2/tasks/{path}", json=fields)
        assert created.status_code == 201, created.text
        done = await wait_terminal(client, created.json()["task_id"])
    assert done["status"] == "completed"
    assert done["type"] == ("hcaptcha" if path == "noname" else path)
    if token is not None:
        assert done["solution"]["token"] == token
    else:
        assert isinstance(done["solution"]["token"], str) and len(done["solution"]["token"]) > 20


async def test_typed_create_route_and_alias(api: Api) -> None:
    async with await api.client_for() as client:
        response = await client.post(
            "/v2/tasks", json={"type": "noname", "url": "https://a.example", "site_key": HCAPTCHA_KEY}
        )
        missing_type = await client.post("/v2/tasks", json={"url": "https://a.example"})
    assert response.status_code == 201
    assert response.json()["type"] == "hcaptcha"
    assert missing_type.status_code == 422
    assert missing_type.json()["error"]["details"][0]["field"] == "type"


async def test_pow_sha256_is_solved_and_verifiable(api: Api) -> None:
    async with await api.client_for() as client:
        created = (await client.post("/v2/tasks/pow-sha256", json={"data": "cracker-test", "difficulty": 3})).json()
        done = await wait_terminal(client, created["task_id"])
    assert done["status"] == "completed", done
    solution = done["solution"]
    digest = hashlib.sha256(f"cracker-test{solution['nonce']}".encode()).hexdigest()
    assert digest.startswith("000") and digest == solution["hash"]
    assert isinstance(solution["token"], str) and solution["token"]
    assert done["cost"] == "0.0001"


async def test_task_past_its_deadline_is_rejected_solve_timeout(api_factory) -> None:  # type: ignore[no-untyped-def]
    async with api_factory(task_timeout_s=0.5, reaper_interval_s=0.1) as api:
        async with await api.client_for() as client:
            # 16^7 expected hashes (the largest difficulty accepted); no nonce below 24 million solves
            # "slow" (checked offline), far more than one worker hashes in half a second.
            created = (await client.post("/v2/tasks/pow-sha256", json={"data": "slow", "difficulty": 7})).json()
            done = await wait_terminal(client, created["task_id"], timeout=10)
            balance = (await client.get("/v2/balance")).json()
    assert done["status"] == "rejected"
    assert done["error"]["code"] == "solve_timeout"
    assert done["error"]["retryable"] is True
    assert balance["balance"] == "10.0000" and balance["held"] == "0.0000"


async def test_pending_task_without_workers_times_out(api_factory) -> None:  # type: ignore[no-untyped-def]
    """A task nobody takes is still answered at its deadline: the reaper's pass rejects it
    solve_timeout, uncharged, and not before. On the test's clock (the periodic reaper parked), so
    a busy machine cannot age the task past its deadline before the test looks at it."""
    clock = ManualClock()
    async with api_factory(task_timeout_s=0.3, reaper_interval_s=3600.0, in_process_workers=False, clock=clock) as api:
        async with await api.client_for("1.00") as client:
            created = (await client.post(
                "/v2/tasks/turnstile", json={"url": "https://a.example", "site_key": TURNSTILE_PASS}
            )).json()
            clock.advance(0.29)
            early = await api.runtime.tasks.reject_overdue()
            pending = (await client.get(f"/v2/tasks/{created['task_id']}")).json()
            clock.advance(0.02)
            late = await api.runtime.tasks.reject_overdue()
            done = (await client.get(f"/v2/tasks/{created['task_id']}")).json()
            balance = (await client.get("/v2/balance")).json()
    assert (early, late) == (0, 1)
    assert pending["status"] == "pending"
    assert done["status"] == "rejected" and done["error"]["code"] == "solve_timeout"
    assert done["started_at"] is None and done["completed_at"] is not None
    assert (done["cost"], balance["balance"], balance["held"]) == ("0.0000", "1.0000", "0.0000")


async def test_task_id_in_any_uuid_spelling(api: Api) -> None:
    async with await api.client_for() as client:
        created = (await client.post(
            "/v2/tasks/turnstile", json={"url": "https://a.example", "site_key": TURNSTILE_PASS}
        )).json()
        upper = await client.get(f"/v2/tasks/{created['task_id'].upper()}")
    assert upper.status_code == 200 and upper.json()["task_id"] == created["task_id"]


VALID_BODIES: dict[str, dict[str, Any]] = {
    "recaptcha-v3": {"url": "https://a.example", "site_key": "6Lreal", "action": "login", "enterprise": True,
                     "proxy": "http://user:pass@10.0.0.1:8080"},
    "cf-clearance": {"url": "https://a.example", "challenge_body_b64": PAGE_B64, "proxy": "socks5://1.2.3.4:1080"},
    "vercel": {"challenge_token": "2.1700000000.60.abc"},
    "turnstile": {"url": "https://a.example", "site_key": "0x4AAAAreal", "cdata": "x"},
}


@pytest.mark.parametrize("task_type", sorted(VALID_BODIES))
async def test_valid_bodies_of_types_without_a_solver_fail_fast(api: Api, task_type: str) -> None:
    """Schema accepts them; nothing here can solve them, so creation fails at once, free of charge."""
    async with await api.client_for() as client:
        response = await client.post(f"/v2/tasks/{task_type}", json=VALID_BODIES[task_type])
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "no_solver_available"


INVALID: list[tuple[str, dict[str, Any], str, str]] = [
    ("turnstile", {"url": "javascript:alert(1)", "site_key": "k"}, "url", "string_pattern_mismatch"),
    ("turnstile", {"url": "https://a.example", "site_key": 5}, "site_key", "string_type"),
    ("turnstile", {"url": "https://a.example", "site_key": ""}, "site_key", "string_too_short"),
    ("hcaptcha", {"url": "https://a.example", "site_key": "k", "sitekey": "k"}, "sitekey", "extra_forbidden"),
    ("recaptcha-v2", {"url": "https://a.example", "site_key": "k", "enterprise": "true"}, "enterprise", "bool_type"),
    ("recaptcha-v3", {"url": "https://a.example", "site_key": "k", "proxy": "1.2.3.4:80"}, "proxy",
     "string_pattern_mismatch"),
    ("recaptcha-v3", {"url": "https://a.example", "site_key": "k", "proxy": "http://h:port"}, "proxy",
     "string_pattern_mismatch"),
    ("cf-clearance", {"url": "https://a.example", "challenge_body_b64": "PGh0bWw-PC9odG1sPg__",
                      "proxy": "http://h:1"}, "challenge_body_b64", "invalid_base64"),
    ("cf-clearance", {"url": "https://a.example", "challenge_body_b64": "PGh0bWw", "proxy": "http://h:1"},
     "challenge_body_b64", "invalid_base64"),
    ("cf-clearance", {"url": "https://a.example", "challenge_body_b64": PAGE_B64}, "proxy", "missing"),
    ("image-to-text", {"image_b64": "not base64!"}, "image_b64", "invalid_base64"),
    ("image-to-text", {"image_b64": "iVBORw0KGgo=", "min_length": 0}, "min_length", "greater_than_equal"),
    ("image-to-text", {"image_b64": "iVBORw0KGgo=", "max_length": "8"}, "max_length", "int_type"),
    ("vercel", {}, "challenge_token", "missing"),
    ("pow-sha256", {"data": "x", "difficulty": 4, "extra": 1}, "extra", "extra_forbidden"),
]


@pytest.mark.parametrize(("task_type", "body", "field", "code"), INVALID)
async def test_invalid_bodies_name_the_field(api: Api, task_type: str, body: dict[str, Any], field: str,
                                             code: str) -> None:
    async with await api.client_for() as client:
        response = await client.post(f"/v2/tasks/{task_type}", json=body)
        typed = await client.post("/v2/tasks", json={"type": task_type, **body})
        balance = (await client.get("/v2/balance")).json()
    for answer in (response, typed):
        assert answer.status_code == 422, answer.text
        details = answer.json()["error"]["details"]
        assert {"field": field, "code": code} in [{"field": d["field"], "code": d["code"]} for d in details]
    assert balance["balance"] == "10.0000" and balance["held"] == "0.0000"
