"""The legacy v1 API, as the published 1.x clients speak it."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tests.conftest import HCAPTCHA_KEY, RECAPTCHA_V2_KEY, TURNSTILE_FAIL, TURNSTILE_PASS, Api


async def poll_v1(client: httpx.AsyncClient, task_id: str) -> dict[str, Any]:
    for _ in range(500):
        body: dict[str, Any] = (await client.get(f"/api/v1/task/status/{task_id}")).json()
        if body["status"] in ("completed", "rejected"):
            return body
        await asyncio.sleep(0.02)
    raise AssertionError("task did not end")


async def v1_client(api: Api, balance: str = "10.00") -> httpx.AsyncClient:
    _, key = await api.account(balance)
    client = api.client()
    client.headers["authorization"] = f"Bearer {key}"
    return client


async def test_turnstile_create_and_poll(api: Api) -> None:
    async with await v1_client(api) as client:
        created = await client.get("/api/v1/task/turnstile",
                                   params={"url": "https://a.example", "sitekey": TURNSTILE_PASS, "ref": "abc"})
        assert created.status_code == 200
        body = created.json()
        assert body["message"] == "Task created" and set(body) == {"message", "task_id"}
        done = await poll_v1(client, body["task_id"])
        v2 = (await client.get(f"/v2/tasks/{body['task_id']}")).json()
    assert done == {"status": "completed", "result": {"solution": "XXXX.DUMMY.TOKEN.XXXX"}, "error": None}
    assert v2["status"] == "completed"  # one task, seen from both APIs


async def test_rejection_reports_the_upper_cased_code_both_ways(api: Api) -> None:
    async with await v1_client(api) as client:
        task_id = (await client.get("/api/v1/task/turnstile",
                                    params={"url": "https://a.example", "sitekey": TURNSTILE_FAIL})).json()["task_id"]
        done = await poll_v1(client, task_id)
    assert done == {"status": "rejected", "result": {"error": "CHALLENGE_ERROR"}, "error": "CHALLENGE_ERROR"}


@pytest.mark.parametrize(
    ("path", "params", "token"),
    [
        ("/api/v1/task/noname", {"url": "https://a.example", "sitekey": HCAPTCHA_KEY},
         "10000000-aaaa-bbbb-cccc-000000000001"),
        ("/api/v1/task/recaptcha-v2", {"url": "https://a.example", "sitekey": RECAPTCHA_V2_KEY, "action": "x",
                                       "proxy": ""}, None),
    ],
)
async def test_other_sandbox_types(api: Api, path: str, params: dict[str, str], token: str | None) -> None:
    async with await v1_client(api) as client:
        created = await client.get(path, params=params)
        assert created.status_code == 200, created.text
        done = await poll_v1(client, created.json()["task_id"])
    assert done["status"] == "completed"
    if token:
        assert done["result"] == {"solution": token}


async def test_pool_types_are_validated_and_fail_fast_without_a_pool(api: Api) -> None:
    async with await v1_client(api) as client:
        v3 = await client.get("/api/v1/task/recaptcha-v3", params={
            "url": "https://a.example", "sitekey": "6Lreal", "action": "login", "enterprise": "true",
            "proxy": "http://u:p@1.2.3.4:8080"})
        enterprise = await client.get("/api/v1/task/", params={
            "url": "https://a.example", "sitekey": "6Lreal", "action": "login", "enterprise": "true"})
        vercel = await client.get("/api/v1/task/vercel/", params={"challengeToken": "2.1.60.abc"})
        cf = await client.post("/api/v1/task/cf-clearance", json={
            "url": "https://a.example", "body": "PGh0bWw+PC9odG1sPg==", "proxy": "http://1.2.3.4:80"})
    for response in (v3, enterprise, vercel, cf):
        assert response.status_code == 422, response.text
        assert response.json()["error"]["code"] == "no_solver_available"
        assert response.json()["message"]


async def test_validation_names_the_v1_parameter(api: Api) -> None:
    async with await v1_client(api) as client:
        response = await client.get("/api/v1/task/turnstile", params={"url": "not a url"})
        cf = await client.post("/api/v1/task/cf-clearance", json={
            "url": "https://a.example", "body": "not_base64!", "proxy": "http://1.2.3.4:80"})
    assert response.status_code == 422
    fields = {d["field"] for d in response.json()["error"]["details"]}
    assert fields == {"url", "sitekey"}
    assert cf.json()["error"]["details"][0]["field"] == "body"


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"}, {"AUTHORIZATION": "bearer nope"}])
async def test_unauthorized(api: Api, headers: dict[str, str]) -> None:
    async with api.client() as client:
        response = await client.get("/api/v1/task/turnstile",
                                    params={"url": "https://a.example", "sitekey": TURNSTILE_PASS}, headers=headers)
    assert response.status_code == 401
    assert response.json() == {"message": "Unauthorized"}


async def test_header_name_in_any_case_and_unknown_task(api: Api) -> None:
    _, key = await api.account()
    async with api.client() as client:
        response = await client.get("/api/v1/task/status/01959e02-08fd-7000-8cbe-f682a959b3c1",
                                    headers={"AuThOrIzAtIoN": f"Bearer {key}"})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
