"""The create fast path (cracker.api.create_fast): creates served ahead of FastAPI, everything else
handed on to FastAPI with the body replayed and the authentication kept."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

import httpx
from starlette.types import Receive, Scope, Send

from tests.conftest import TURNSTILE_PASS, Api, wait_terminal

TURNSTILE = {"url": "https://example.com", "site_key": TURNSTILE_PASS}


@contextmanager
def counting_fastapi(api: Api) -> Iterator[list[str]]:
    """The paths of the requests that reached FastAPI while inside."""
    reached: list[str] = []
    inner = api.app.app

    class Counting:
        """The FastAPI app (its state and all), counting the requests it is called with."""

        def __getattr__(self, name: str) -> object:
            return getattr(inner, name)

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http":
                reached.append(f"{scope['method']} {scope['path']}")
            await inner(scope, receive, send)

    api.app.app = Counting()  # type: ignore[assignment]
    try:
        yield reached
    finally:
        api.app.app = inner


async def test_valid_creates_skip_fastapi_and_the_rest_reach_it(api: Api) -> None:
    """A create the model accepts is answered by the fast path (per-type, alias and typed routes);
    a bad body, an odd Idempotency-Key or a body without Content-Length reaches FastAPI, which
    answers it as before."""
    async with await api.client_for("1.00") as client:
        with counting_fastapi(api) as reached:
            typed = await client.post("/v2/tasks", json={"type": "turnstile", **TURNSTILE})
            per_type = await client.post("/v2/tasks/turnstile", json=TURNSTILE, headers={"Idempotency-Key": "k"})
            fast = list(reached)
            bad = await client.post("/v2/tasks/turnstile", json={"url": "https://example.com"})
            long_key = await client.post("/v2/tasks/turnstile", json=TURNSTILE, headers={"Idempotency-Key": "k" * 256})

            async def chunks() -> AsyncIterator[bytes]:
                yield b'{"url": "https://example.com", '
                yield b'"site_key": "' + TURNSTILE_PASS.encode() + b'"}'

            chunked = await client.post(
                "/v2/tasks/turnstile", content=chunks(), headers={"content-type": "application/json"}
            )
        for answer in (typed, per_type, chunked):
            await wait_terminal(client, answer.json()["task_id"])
        balance = (await client.get("/v2/balance")).json()
    assert fast == []
    assert [typed.status_code, per_type.status_code, chunked.status_code] == [201, 201, 201]
    assert per_type.headers["location"] == f"/v2/tasks/{per_type.json()['task_id']}"
    assert bad.status_code == 422 and bad.json()["error"]["details"][0]["field"] == "site_key"
    assert long_key.status_code == 422 and long_key.json()["error"]["details"][0]["field"] == "Idempotency-Key"
    assert reached == ["POST /v2/tasks/turnstile"] * 3
    assert balance["balance"] == "0.9973"


async def test_a_request_handed_on_pays_one_rate_limit_token(api_factory) -> None:  # type: ignore[no-untyped-def]
    """The fast path authenticates (and takes the token) before it reads the body; a request it
    hands on to FastAPI is not charged a second time."""
    async with api_factory(rate_limit_per_s=0.01, rate_limit_burst=2) as api:
        async with await api.client_for("1.00") as client:
            bad = await client.post("/v2/tasks/turnstile", json={"url": "https://example.com"})
            second = await client.get("/v2/balance")
            third = await client.get("/v2/balance")
    assert bad.status_code == 422
    assert second.status_code == 200
    assert third.status_code == 429


async def test_an_unauthenticated_create_is_refused_before_its_body_is_read(api: Api) -> None:
    """No key, a wrong key: the create's answer is the auth error, whatever the body."""
    async with api.client() as anonymous, api.client("ck_wrong") as wrong:
        missing = await anonymous.post("/v2/tasks/turnstile", json={"garbage": True})
        invalid = await wrong.post("/v2/tasks", json=TURNSTILE)
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "missing_api_key"
    assert invalid.status_code == 401 and invalid.json()["error"]["code"] == "invalid_api_key"


async def test_the_poll_fast_path_answers_as_the_fastapi_route_does(api: Api) -> None:
    """The poll fast path sends its two ASGI messages itself (no Response object): the same status,
    headers and body as the FastAPI route of the same path, for a task and for an error."""
    async with await api.client_for("1.00") as client:
        created = await client.post("/v2/tasks/turnstile", json=TURNSTILE)
        task_id = created.json()["task_id"]
        await wait_terminal(client, task_id)
        paths = [f"/v2/tasks/{task_id}", "/v2/tasks/0190b1a8-0000-7000-8000-000000000000", "/v2/tasks/nope"]
        with counting_fastapi(api) as reached:
            fast = [await client.get(path) for path in paths]
        assert reached == []
        fast_path, api.app.fast_path = api.app.fast_path, None
        try:
            with counting_fastapi(api) as reached:
                routed = [await client.get(path) for path in paths]
        finally:
            api.app.fast_path = fast_path
        assert reached == [f"GET {path}" for path in paths]

    def comparable(answer: httpx.Response) -> tuple[int, str, str, dict[str, object]]:
        body = answer.json()
        if "error" in body and body.get("task_id") is None:
            body["error"].pop("request_id", None)  # each request's own id
        return answer.status_code, answer.headers["content-type"], answer.headers["content-length"], body

    assert [answer.status_code for answer in fast] == [200, 404, 422]
    assert [comparable(answer) for answer in fast] == [comparable(answer) for answer in routed]
    assert all(answer.headers["x-request-id"] for answer in fast)
