"""The real server (`cracker serve` in a subprocess) over real HTTP, and the `cracker` command line."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any

import httpx
import pytest
from openapi_spec_validator import validate

from tests.conftest import TURNSTILE_PASS, LiveServer

TURNSTILE = {"url": "https://example.com", "site_key": TURNSTILE_PASS}


def test_health_needs_no_key(live_server: LiveServer) -> None:
    response = httpx.get(f"{live_server.base_url}/v2/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["timestamp"].endswith("Z")
    assert response.headers["x-request-id"]


def test_task_round_trip_over_http(live_server: LiveServer) -> None:
    _, key = live_server.new_account("1.00")
    with httpx.Client(base_url=live_server.base_url, headers={"x-solvium-auth": key}) as client:
        created = client.post("/v2/tasks/turnstile", json=TURNSTILE)
        assert created.status_code == 201
        task_id = created.json()["task_id"]
        for _ in range(200):
            task = client.get(f"/v2/tasks/{task_id}").json()
            if task["status"] == "completed":
                break
            asyncio.run(asyncio.sleep(0.02))
        balance = client.get("/v2/balance").json()
    assert task["solution"] == {"token": "XXXX.DUMMY.TOKEN.XXXX"}
    assert balance == {"balance": "0.9991", "held": "0.0000", "currency": "USD"}


async def test_concurrent_creates_over_http_never_overspend(live_server: LiveServer) -> None:
    _, key = live_server.new_account("0.0027")  # three turnstile tasks
    limits = httpx.Limits(max_connections=40)
    async with httpx.AsyncClient(base_url=live_server.base_url, headers={"x-solvium-auth": key},
                                 limits=limits, timeout=30) as client:
        responses = await asyncio.gather(*(client.post("/v2/tasks/turnstile", json=TURNSTILE) for _ in range(40)))
        await asyncio.sleep(0.5)
        balance = (await client.get("/v2/balance")).json()
    assert Counter(r.status_code for r in responses) == {201: 3, 402: 37}
    assert balance["balance"] == "0.0000"


def test_cli_accounts_keys_and_offers(live_server: LiveServer) -> None:
    account_id, key = live_server.new_account("1.00")
    assert key.startswith("ck_") and len(key) > 40
    topped = live_server.cli("accounts", "topup", account_id, "2.50")
    assert topped.returncode == 0, topped.stderr
    assert "3.5000" in topped.stdout
    worker = live_server.cli("keys", "create", account_id, "--scope", "worker", "--json")
    assert worker.returncode == 0, worker.stderr
    worker_key = json.loads(worker.stdout)["api_key"]
    with httpx.Client(base_url=live_server.base_url) as client:
        assert client.get("/v2/balance", headers={"x-solvium-auth": key}).json()["balance"] == "3.5000"
        denied = client.get("/v2/balance", headers={"x-solvium-auth": worker_key})
        assert denied.status_code == 401 and denied.json()["error"]["code"] == "insufficient_scope"
    listed = live_server.cli("offers", "list")
    assert listed.returncode == 0 and "pow-sha256" in listed.stdout
    changed = live_server.cli("offers", "set", "vercel", "0.0015")
    assert changed.returncode == 0, changed.stderr
    offers = httpx.get(f"{live_server.base_url}/v2/offers").json()["offers"]
    assert {"type": "vercel", "price": "0.0015"}.items() <= next(o for o in offers if o["type"] == "vercel").items()
    bad = live_server.cli("offers", "set", "vercel", "0.00001")
    assert bad.returncode != 0 and "4 decimals" in bad.stderr + bad.stdout
    unknown = live_server.cli("accounts", "topup", "01959e02-08fd-7000-8cbe-f682a959b3c1", "1")
    assert unknown.returncode == 1


def test_openapi_is_valid_and_describes_every_route(live_server: LiveServer) -> None:
    doc = httpx.get(f"{live_server.base_url}/openapi.json").json()
    validate(doc)  # raises on an invalid OpenAPI 3.1 document
    assert doc["openapi"].startswith("3.1")
    paths = doc["paths"]
    expected = {
        ("get", "/v2/tasks/{task_id}"), ("get", "/v2/balance"), ("get", "/v2/health"), ("post", "/v2/tasks"),
        ("get", "/v2/offers"), ("get", "/v2/errors"), ("get", "/errors/{slug}"), ("get", "/metrics"),
        *(("post", f"/v2/tasks/{t}") for t in ("image-to-text", "altcha", "cap", "mcaptcha", "friendly-captcha",
                                             "pow-sha256", "turnstile", "hcaptcha", "noname", "recaptcha-v2",
                                             "recaptcha-v3", "cf-clearance", "vercel")),
    }
    assert expected <= {(m, p) for p, item in paths.items() for m in item}
    for path, item in paths.items():
        # Legacy v1 errors have v1's own shape ({"message"} plus the v2 error), documented as such.
        envelope_ref = "#/components/schemas/" + ("V1Error" if path.startswith("/api/v1/") else "ErrorEnvelope")
        for method, operation in item.items():
            errors = {s: r for s, r in operation["responses"].items() if s[0] in "45"}
            assert errors, (method, path)
            for response in errors.values():
                assert response["content"]["application/json"]["schema"]["$ref"] == envelope_ref
            # Operation ids are ours, not FastAPI's generated ones (create_api_v1_task_recaptcha_v3_get).
            assert not operation["operationId"].endswith(("_get", "_post", "_delete")), operation["operationId"]
            if "requestBody" in operation:  # a body that is not JSON, or too large
                assert {"400", "413"} <= set(errors), (method, path)
            if method == "post":
                assert "requestBody" in operation, (method, path)
    create = paths["/v2/tasks/turnstile"]["post"]
    assert {"201", "401", "402", "422", "429"} <= set(create["responses"])
    assert create["security"]
    assert "validation_failed" in doc["components"]["schemas"]["ErrorBody"]["properties"]["code"]["enum"]


JSON = {"content-type": "application/json"}
BAD_REQUESTS: list[tuple[str, str, dict[str, Any]]] = [
    ("POST", "/v2/tasks/turnstile", {"json": {"url": 1, "site_key": None}}),
    ("POST", "/v2/tasks/turnstile", {"json": {"url": "https://a.b", "site_key": ["list"]}}),
    ("POST", "/v2/tasks/turnstile", {"content": b"\xff\xfe\x00garbage", "headers": JSON}),
    ("POST", "/v2/tasks/turnstile", {"content": b"[" * 50_000 + b"]" * 50_000, "headers": JSON}),
    ("POST", "/v2/tasks/turnstile",
     {"content": b"url=https://a.b", "headers": {"content-type": "application/x-www-form-urlencoded"}}),
    ("POST", "/v2/tasks/turnstile", {"content": b"", "headers": JSON}),
    ("POST", "/v2/tasks/turnstile", {"content": b"null", "headers": JSON}),
    ("POST", "/v2/tasks/image-to-text", {"json": {"image_b64": "A" * (3 * 1024 * 1024)}}),
    ("POST", "/v2/tasks/image-to-text", {"json": {"image_b64": "-_-_"}}),
    ("POST", "/v2/tasks/pow-sha256", {"json": {"data": "x", "difficulty": 10**30}}),
    ("POST", "/v2/tasks/pow-sha256", {"json": {"data": "x", "difficulty": 1.5}}),
    ("POST", "/v2/tasks", {"json": {"type": ["turnstile"]}}),
    ("POST", "/v2/tasks", {"json": "turnstile"}),
    ("GET", "/v2/tasks/not-a-uuid", {}),
    ("GET", "/v2/tasks/" + "9" * 5000, {}),
    ("GET", "/v2/tasks/%00%01", {}),
    ("PUT", "/v2/tasks/turnstile", {"json": {}}),
]


@pytest.fixture(scope="module")
def bad_input_key(live_server: LiveServer) -> str:
    return live_server.new_account("1.00")[1]


@pytest.mark.parametrize(("method", "path", "kwargs"), BAD_REQUESTS)
def test_bad_input_gets_a_4xx_envelope_and_leaves_nothing(live_server: LiveServer, bad_input_key: str,
                                                          method: str, path: str, kwargs: dict[str, Any]) -> None:
    key = bad_input_key
    with httpx.Client(base_url=live_server.base_url, headers={"x-solvium-auth": key}, timeout=30) as client:
        response = client.request(method, path, **kwargs)
        balance = client.get("/v2/balance").json()
        healthy = client.get("/v2/health").status_code
    assert 400 <= response.status_code < 500, response.text
    error = response.json()["error"]
    assert error["code"] and error["request_id"] == response.headers["x-request-id"]
    assert "Traceback" not in response.text
    assert balance == {"balance": "1.0000", "held": "0.0000", "currency": "USD"}
    assert healthy == 200


@pytest.mark.parametrize("callback_url", [
    "http://[::1", "http://example.com:99999/x", "http://:80/x",
    # Control characters: stored, such a URL failed every delivery attempt for a day.
    "http://example\x1e.com/hook", "http://example.com/\x07hook", "http://example.com/hook\x7f",
])
def test_unparseable_callback_urls_are_refused(live_server: LiveServer, bad_input_key: str, callback_url: str) -> None:
    response = httpx.post(f"{live_server.base_url}/v2/tasks/turnstile", headers={"x-solvium-auth": bad_input_key},
                          json={**TURNSTILE, "callback_url": callback_url})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"][0]["field"] == "callback_url"


def test_integers_beyond_64_bits_in_a_vendor_object_are_refused(live_server: LiveServer) -> None:
    # Once stored, such a task broke the lease call of whoever served it (issue 17): refused at
    # validation instead, as the site's own 64-bit readers would refuse it.
    import capjs_server

    _, key = live_server.new_account("1.00")
    challenge = capjs_server.CapServer("k" * 32, challenge_count=2, challenge_size=8,
                                       challenge_difficulty=1).create_challenge()
    challenge["vendor_extra"] = 10**30
    with httpx.Client(base_url=live_server.base_url, headers={"x-solvium-auth": key}) as client:
        created = client.post("/v2/tasks/cap", json={"challenge": challenge})
    assert created.status_code == 422, created.text
    assert created.json()["error"]["details"][0]["code"] == "json_out_of_bounds"
