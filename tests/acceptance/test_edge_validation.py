"""The HTTP edge against the real server: free-form JSON is bounded at validation, oversized
validation answers are capped, and every unexpected failure is the internal_error envelope."""

from __future__ import annotations

import json
import sqlite3

import httpx
import pytest

from cracker.api.middleware import RequestContextMiddleware
from tests.conftest import TURNSTILE_PASS, Api, LiveServer
from tests.integration.test_api_errors import assert_envelope

CAP = {"challenge": {"c": 1, "s": 8, "d": 1}, "token": "t"}


def nested(depth: int) -> str:
    """An object ``depth`` levels deep, as JSON text (the encoder itself cannot go that deep)."""
    return '{"a": ' * (depth - 1) + "{}" + "}" * (depth - 1)


@pytest.fixture(scope="module")
def key(live_server: LiveServer) -> str:
    return live_server.new_account()[1]


def _post(server: LiveServer, key: str, path: str, content: bytes) -> httpx.Response:
    return httpx.post(f"{server.base_url}{path}", content=content,
                      headers={"x-solvium-auth": key, "content-type": "application/json"}, timeout=30)


@pytest.mark.parametrize("depth", [33, 260])
def test_deeply_nested_vendor_objects_are_refused(live_server: LiveServer, key: str, depth: int) -> None:
    body = '{"challenge": {"challenge": {"c": 1, "s": 8, "d": 1}, "token": "t", "instrumentation": %s}}'
    response = _post(live_server, key, "/v2/tasks/cap", (body % nested(depth)).encode())
    error = assert_envelope(response, "validation_failed")
    assert error["details"][0]["field"] == "challenge"
    assert error["details"][0]["code"] == "json_out_of_bounds"
    assert "nested deeper than 32 levels" in error["details"][0]["message"]


def test_json_too_deep_to_parse_is_an_invalid_request(live_server: LiveServer, key: str) -> None:
    body = '{"challenge": {"challenge": {"c": 1, "s": 8, "d": 1}, "token": "t", "instrumentation": %s}}'
    assert_envelope(_post(live_server, key, "/v2/tasks/cap", (body % nested(5000)).encode()), "invalid_request")


def test_vendor_objects_of_ordinary_depth_pass(live_server: LiveServer, key: str) -> None:
    body = {"challenge": {**CAP, "instrumentation": json.loads(nested(10))}}
    assert _post(live_server, key, "/v2/tasks/cap", json.dumps(body).encode()).status_code == 201


@pytest.mark.parametrize("raw", [str(2**63), str(-(2**63) - 1), str(2**70), "NaN", "Infinity", "1e400"])
def test_numbers_out_of_bounds_in_vendor_objects_are_refused(live_server: LiveServer, key: str, raw: str) -> None:
    for path, body in (
        ("/v2/tasks/cap", '{"challenge": {"challenge": {"c": 1, "s": 8, "d": 1}, "token": "t", "x": [%s]}}'),
        ("/v2/tasks/mcaptcha", '{"config": {"string": "s", "salt": "t", "difficulty_factor": 5, '
                               '"max_recorded_nonce": %s}, "site_key": "k"}'),
    ):
        response = _post(live_server, key, path, (body % raw).encode())
        error = assert_envelope(response, "validation_failed")
        assert error["details"][0]["code"] in ("json_out_of_bounds", "int_type", "float_type"), error


def test_64_bit_integers_pass(live_server: LiveServer, key: str) -> None:
    body = {"challenge": {**CAP, "x": [2**63 - 1, -(2**63)]}}
    assert _post(live_server, key, "/v2/tasks/cap", json.dumps(body).encode()).status_code == 201


def test_validation_details_are_capped(live_server: LiveServer, key: str) -> None:
    body = {"url": "https://example.com", "site_key": TURNSTILE_PASS, **{f"unknown_{i}": 1 for i in range(20_000)}}
    content = json.dumps(body).encode()
    assert len(content) > 200_000
    response = _post(live_server, key, "/v2/tasks/turnstile", content)
    error = assert_envelope(response, "validation_failed")
    assert len(error["details"]) == 50
    assert "19950 more left out" in error["message"]
    assert len(response.content) < 20_000


def test_a_huge_unknown_key_is_clipped_in_details(live_server: LiveServer, key: str) -> None:
    body = {"url": "https://example.com", "site_key": TURNSTILE_PASS, "k" * 100_000: 1}
    response = _post(live_server, key, "/v2/tasks/turnstile", json.dumps(body).encode())
    assert_envelope(response, "validation_failed")
    assert len(response.content) < 2_000


def test_an_unexpected_failure_in_a_route_is_the_envelope(live_server: LiveServer, key: str) -> None:
    with httpx.Client(base_url=live_server.base_url, headers={"x-solvium-auth": key}) as client:
        created = client.post("/v2/tasks/turnstile", json={"url": "https://example.com", "site_key": TURNSTILE_PASS})
        task_id = created.json()["task_id"]
        # A status no code writes: reading the task now fails unexpectedly inside the route.
        db = live_server.env["CRACKER_DATABASE_URL"].removeprefix("sqlite:///")
        with sqlite3.connect(db) as conn:
            conn.execute("UPDATE tasks SET status = 'bogus' WHERE id = ?", (task_id,))
        cancelled = client.delete(f"/v2/tasks/{task_id}")
        listed = client.get(f"/v2/tasks/{task_id}/deliveries")
    for response in (cancelled, listed):
        assert_envelope(response, "internal_error")


async def test_an_unexpected_failure_in_the_middleware_is_the_envelope(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: object) -> None:
        raise RuntimeError("a bug in the edge")

    monkeypatch.setattr(RequestContextMiddleware, "_serve_app", broken)
    async with api.client() as client:
        response = await client.get("/v2/offers")
    assert_envelope(response, "internal_error")
