"""Limits against the real server: per client address for requests without a valid key, and per
account on open long-polls and on API keys; each refusal is 429 with Retry-After and the envelope."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import LiveServer, started_server
from tests.integration.test_api_errors import assert_envelope

BOGUS_KEY = "ck_" + "B" * 43


@pytest.fixture(scope="module")
def limited_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with started_server(
        tmp_path_factory.mktemp("limits"), CRACKER_ADDRESS_RATE_LIMIT_PER_S="0.2",
        CRACKER_ADDRESS_RATE_LIMIT_BURST="5", CRACKER_MAX_LONG_POLLS_PER_ACCOUNT="2",
        CRACKER_MAX_API_KEYS_PER_ACCOUNT="2",
    ) as server:
        yield server


def client_from(server: LiveServer, address: str) -> httpx.Client:
    """A client whose connections come from ``address`` (any of 127.0.0.0/8): each test its own
    client address, hence its own bucket."""
    return httpx.Client(base_url=server.base_url, transport=httpx.HTTPTransport(local_address=address))


def assert_limited(response: httpx.Response) -> None:
    assert_envelope(response, "rate_limit_exceeded")
    assert int(response.headers["Retry-After"]) >= 1


def test_bad_keys_are_limited_per_address(limited_server: LiveServer) -> None:
    with client_from(limited_server, "127.0.0.2") as client:
        statuses = [client.get("/v2/balance", headers={"x-solvium-auth": BOGUS_KEY}).status_code
                    for _ in range(5)]
        limited = client.get("/v2/balance", headers={"x-solvium-auth": BOGUS_KEY})
        no_key = client.get("/v2/balance")
    assert statuses == [401] * 5
    assert_limited(limited)
    assert_limited(no_key)
    # Another address is not affected.
    with client_from(limited_server, "127.0.0.3") as other:
        assert other.get("/v2/balance", headers={"x-solvium-auth": BOGUS_KEY}).status_code == 401


@pytest.mark.parametrize(("path", "address"), [
    ("/metrics", "127.0.1.1"), ("/openapi.json", "127.0.1.2"), ("/v2/offers", "127.0.1.3"),
    ("/errors/not-found", "127.0.1.4"), ("/no/such/route", "127.0.1.5"),
])
def test_public_routes_are_limited_per_address(limited_server: LiveServer, path: str, address: str) -> None:
    with client_from(limited_server, address) as client:
        statuses = [client.get(path).status_code for _ in range(5)]
        limited = client.get(path)
    assert 429 not in statuses
    assert_limited(limited)


def test_a_made_up_key_buys_no_free_requests_on_public_routes(limited_server: LiveServer) -> None:
    with client_from(limited_server, "127.0.1.9") as client:
        statuses = [client.get("/v2/offers", headers={"x-solvium-auth": BOGUS_KEY}).status_code for _ in range(5)]
        limited = client.get("/v2/offers", headers={"x-solvium-auth": BOGUS_KEY})
    assert statuses == [200] * 5
    assert_limited(limited)


def test_a_valid_key_keeps_working_from_a_spent_address(limited_server: LiveServer) -> None:
    _, key = limited_server.new_account()
    with client_from(limited_server, "127.0.0.4") as client:
        assert client.get("/v2/balance", headers={"x-solvium-auth": key}).status_code == 200
        for _ in range(6):
            client.get("/v2/balance", headers={"x-solvium-auth": BOGUS_KEY})
        assert_limited(client.get("/v2/balance", headers={"x-solvium-auth": BOGUS_KEY}))
        # The valid key was seen moments ago: it is not held hostage by the bad ones.
        assert client.get("/v2/balance", headers={"x-solvium-auth": key}).status_code == 200


async def test_open_long_polls_are_capped_per_account(limited_server: LiveServer) -> None:
    _, key = limited_server.new_account()
    _, other_key = limited_server.new_account()
    async with httpx.AsyncClient(base_url=limited_server.base_url, headers={"x-solvium-auth": key},
                                 timeout=30) as client:
        # A task that stays running for the test: 16**7 expected hashes on one CPU worker.
        created = await client.post("/v2/tasks/pow-sha256", json={"data": "slow", "difficulty": 7})
        task_id = created.json()["task_id"]
        try:
            polls = [asyncio.create_task(client.get(f"/v2/tasks/{task_id}", params={"wait": 3})) for _ in range(2)]
            await asyncio.sleep(1.0)
            third = await client.get(f"/v2/tasks/{task_id}", params={"wait": 3})
            plain = await client.get(f"/v2/tasks/{task_id}")
            held = await asyncio.gather(*polls)
            after = await client.get(f"/v2/tasks/{task_id}", params={"wait": 0.1})
            other = await client.get(f"/v2/tasks/{task_id}", params={"wait": 0.1},
                                     headers={"x-solvium-auth": other_key})
        finally:
            await client.delete(f"/v2/tasks/{task_id}")
    assert [r.status_code for r in held] == [200, 200]
    assert_limited(third)
    assert plain.status_code == 200 and after.status_code == 200
    assert other.status_code == 404  # its own slots: another account's task is simply not found


def test_api_keys_are_capped_per_account(limited_server: LiveServer) -> None:
    account_id, _ = limited_server.new_account()  # holds one key
    made = limited_server.cli("keys", "create", account_id, "--json")
    refused = limited_server.cli("keys", "create", account_id, "--json")
    assert made.returncode == 0, made.stderr
    assert refused.returncode == 1
    assert "2 active API keys" in refused.stderr
    admin_account, _ = limited_server.new_account()
    admin = limited_server.cli("keys", "create", admin_account, "--scope", "admin", "--json")
    assert admin.returncode == 0, admin.stderr
    headers = {"x-solvium-auth": json.loads(admin.stdout)["api_key"]}
    with httpx.Client(base_url=limited_server.base_url, headers=headers) as client:
        over = client.post(f"/v2/admin/accounts/{account_id}/keys", json={"scope": "client"})
        # A revoked key makes room for another.
        oldest = client.get(f"/v2/admin/accounts/{account_id}/keys").json()["keys"][0]["key_id"]
        revoked = client.delete(f"/v2/admin/keys/{oldest}")
        again = client.post(f"/v2/admin/accounts/{account_id}/keys", json={"scope": "client"})
    assert_limited(over)
    assert revoked.status_code == 200 and again.status_code == 201
