"""Keys can be listed and revoked (CLI and admin API), webhook secrets rotated with an overlap."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from cracker.domain.accounts import Scope
from cracker.sdk import verify_webhook
from tests.conftest import (
    TURNSTILE_PASS,
    Api,
    LiveServer,
    cracker_cli,
    fresh_postgres_database,
    started_server,
    wait_terminal,
)
from tests.integration.test_client_features import Receiver, receiver  # noqa: F401 - the fixture

TURNSTILE = {"url": "https://example.com", "site_key": TURNSTILE_PASS}


async def _admin_key(api: Api) -> str:
    account_id, _ = await api.account()
    return (await api.runtime.accounts.create_key(account_id, Scope.ADMIN)).api_key


# --- keys over the admin API ---


async def test_admin_lists_creates_and_revokes_keys(api: Api) -> None:
    account_id, client_key = await api.account()
    async with api.client(await _admin_key(api)) as admin:
        created = await admin.post(f"/v2/admin/accounts/{account_id}/keys", json={"scope": "worker"})
        assert created.status_code == 201, created.text
        worker = created.json()
        assert worker["scope"] == "worker" and worker["api_key"].startswith("ck_")
        listed = (await admin.get(f"/v2/admin/accounts/{account_id}/keys")).json()["keys"]
        assert [(k["scope"], k["revoked_at"]) for k in listed] == [("client", None), ("worker", None)]
        assert worker["api_key"].startswith(listed[1]["prefix"])
        assert all("api_key" not in k for k in listed)  # a key is shown once, on creation

        async with api.client(client_key) as client:
            assert (await client.get("/v2/balance")).status_code == 200
            revoked = await admin.delete(f"/v2/admin/keys/{listed[0]['key_id']}")
            assert revoked.status_code == 200, revoked.text
            assert revoked.json()["revoked_at"] is not None
            # This process forgets the key at once, whatever its auth cache holds.
            refused = await client.get("/v2/balance")
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "invalid_api_key"
        again = (await admin.delete(f"/v2/admin/keys/{listed[0]['key_id']}")).json()
        assert again["revoked_at"] == revoked.json()["revoked_at"]  # revoking twice keeps the first time
        listed = (await admin.get(f"/v2/admin/accounts/{account_id}/keys")).json()["keys"]
        assert listed[0]["revoked_at"] == again["revoked_at"] and listed[1]["revoked_at"] is None


async def test_admin_routes_refuse_client_and_worker_keys(api: Api) -> None:
    victim_id, victim_key = await api.account()
    attacker_id, attacker_key = await api.account()
    worker_key = (await api.runtime.accounts.create_key(attacker_id, Scope.WORKER)).api_key
    victim_keys = await api.runtime.accounts.list_keys(victim_id)
    for key in (attacker_key, worker_key):
        async with api.client(key) as client:
            answers = [
                await client.get(f"/v2/admin/accounts/{victim_id}/keys"),
                await client.post(f"/v2/admin/accounts/{victim_id}/keys", json={"scope": "admin"}),
                await client.delete(f"/v2/admin/keys/{victim_keys[0].id}"),
                # Not even its own account: key management is the operator's.
                await client.get(f"/v2/admin/accounts/{attacker_id}/keys"),
            ]
        assert [a.status_code for a in answers] == [401] * 4
        assert {a.json()["error"]["code"] for a in answers} == {"insufficient_scope"}
    assert await api.runtime.accounts.list_keys(victim_id) == victim_keys  # nothing made, nothing revoked
    async with api.client(victim_key) as victim:
        assert (await victim.get("/v2/balance")).status_code == 200


async def test_admin_key_routes_answer_bad_ids_and_unknown_ones(api: Api) -> None:
    async with api.client(await _admin_key(api)) as admin:
        bad = await admin.get("/v2/admin/accounts/not-a-uuid/keys")
        unknown = await admin.delete("/v2/admin/keys/01a22f0d-07e3-71fd-b8c4-f03da76c4f7f")
        no_account = await admin.post("/v2/admin/accounts/01a22f0d-07e3-71fd-b8c4-f03da76c4f7f/keys")
        bad_scope = await admin.post(f"/v2/admin/accounts/{(await api.account())[0]}/keys", json={"scope": "root"})
    assert (bad.status_code, bad.json()["error"]["details"][0]["field"]) == (422, "account_id")
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "not_found")
    assert (no_account.status_code, no_account.json()["error"]["code"]) == (404, "not_found")
    assert (bad_scope.status_code, bad_scope.json()["error"]["code"]) == (422, "validation_failed")


# --- keys from the CLI, against a running server ---


def test_cli_lists_and_revokes_a_key_the_server_then_refuses(live_server: LiveServer) -> None:
    account_id, key = live_server.new_account()
    listed = live_server.cli("keys", "list", account_id, "--json")
    assert listed.returncode == 0, listed.stderr
    (row,) = [json.loads(line) for line in listed.stdout.splitlines()]
    assert key.startswith(row["prefix"]) and row["scope"] == "client" and row["revoked_at"] is None
    headers = {"x-solvium-auth": key}
    assert httpx.get(f"{live_server.base_url}/v2/balance", headers=headers).status_code == 200  # now cached
    revoked = live_server.cli("keys", "revoke", row["key_id"])
    assert revoked.returncode == 0, revoked.stderr
    assert row["key_id"] in revoked.stdout
    # The server process caches a verified key for CRACKER_AUTH_CACHE_S (5 s by default).
    deadline = time.monotonic() + 5 + 3
    while httpx.get(f"{live_server.base_url}/v2/balance", headers=headers).status_code == 200:
        assert time.monotonic() < deadline, "the revoked key was still accepted after the auth cache's lifetime"
        time.sleep(0.2)
    assert json.loads(live_server.cli("keys", "list", account_id, "--json").stdout)["revoked_at"] is not None
    unknown = live_server.cli("keys", "revoke", "no-such-key")
    assert unknown.returncode == 1 and "Traceback" not in unknown.stderr


# --- revocation across two processes on PostgreSQL ---


@pytest.fixture
def two_postgres_servers(tmp_path: Path) -> Iterator[tuple[list[str], dict[str, str]]]:
    with fresh_postgres_database() as url, ExitStack() as stack:
        settings = {"CRACKER_DATABASE_URL": url, "CRACKER_AUTH_CACHE_S": "2"}
        servers = []
        for name in ("first", "second"):
            (tmp_path / name).mkdir()
            servers.append(stack.enter_context(started_server(tmp_path / name, **settings)))
        yield [server.base_url for server in servers], servers[0].env


def test_revocation_reaches_every_process_within_the_auth_cache(
    two_postgres_servers: tuple[list[str], dict[str, str]],
) -> None:
    (first, second), env = two_postgres_servers
    created = json.loads(cracker_cli("accounts", "create", "--name", "rev", "--json", env=env).stdout)
    account_id, key = created["account_id"], created["api_key"]
    admin = json.loads(cracker_cli("keys", "create", account_id, "--scope", "admin", "--json", env=env).stdout)
    headers = {"x-solvium-auth": key}
    for base in (first, second):  # both processes have verified (and cached) the key
        assert httpx.get(f"{base}/v2/balance", headers=headers).status_code == 200
    listing = cracker_cli("keys", "list", account_id, "--json", env=env).stdout
    listed = [json.loads(line) for line in listing.splitlines()]
    key_id = next(row["key_id"] for row in listed if row["scope"] == "client")
    revoked_at = time.monotonic()
    answer = httpx.delete(f"{first}/v2/admin/keys/{key_id}", headers={"x-solvium-auth": admin["api_key"]})
    assert answer.status_code == 200, answer.text
    assert httpx.get(f"{first}/v2/balance", headers=headers).status_code == 401  # at once where it was revoked
    while httpx.get(f"{second}/v2/balance", headers=headers).status_code == 200:
        assert time.monotonic() - revoked_at < 2 + 2, "the other process accepted the key past its auth cache"
        time.sleep(0.1)
    assert httpx.get(f"{second}/v2/balance", headers=headers).json()["error"]["code"] == "invalid_api_key"


# --- webhook secret rotation ---


async def _delivered(hook: Receiver, count: int) -> tuple[dict[str, str], bytes]:
    for _ in range(400):
        if len(hook.received) >= count:
            return hook.received[count - 1]
        await asyncio.sleep(0.025)
    raise AssertionError(f"delivery {count} never arrived")


async def _solve_with_callback(client: httpx.AsyncClient, url: str) -> None:
    created = (await client.post("/v2/tasks/turnstile", json={**TURNSTILE, "callback_url": url})).json()
    assert (await wait_terminal(client, created["task_id"]))["status"] == "completed"


async def test_rotation_signs_with_both_secrets_during_the_overlap(api_factory: Any, receiver: Receiver) -> None:  # noqa: F811
    async with api_factory(webhook_allow_private=True, webhook_allow_any_port=True, webhook_poll_s=0.05) as api:
        async with await api.client_for() as client, await api.client_for() as bystander:
            old = (await client.get("/v2/webhooks/secret")).json()
            assert old["previous_valid_until"] is None
            others = (await bystander.get("/v2/webhooks/secret")).json()["secret"]

            rotated = await client.post("/v2/webhooks/secret/rotate", json={"overlap_s": 3600})
            assert rotated.status_code == 200, rotated.text
            new = rotated.json()
            assert new["secret"] != old["secret"] and new["secret"].startswith("whsec_")
            assert new["previous_valid_until"] is not None
            assert (await client.get("/v2/webhooks/secret")).json()["secret"] == new["secret"]
            await _solve_with_callback(client, receiver.url)
            headers, body = await _delivered(receiver, 1)
            signature = headers["x-cracker-signature"]
            assert signature.count("v1=") == 2
            assert verify_webhook(new["secret"], body, signature)  # a receiver that switched
            assert verify_webhook(old["secret"], body, signature)  # one that has not yet
            assert not verify_webhook(others, body, signature)  # nobody else's secret

            # The overlap ends at once with overlap_s=0: only the newest secret signs.
            newest = (await client.post("/v2/webhooks/secret/rotate", json={"overlap_s": 0})).json()
            assert newest["previous_valid_until"] is None
            await _solve_with_callback(client, receiver.url)
            headers, body = await _delivered(receiver, 2)
            signature = headers["x-cracker-signature"]
            assert signature.count("v1=") == 1
            assert verify_webhook(newest["secret"], body, signature)
            assert not verify_webhook(new["secret"], body, signature)
            assert not verify_webhook(old["secret"], body, signature)
            # Another account's secret is untouched by these rotations.
            assert (await bystander.get("/v2/webhooks/secret")).json()["secret"] == others


async def test_rotation_refuses_a_bad_overlap(api: Api) -> None:
    async with await api.client_for() as client:
        before = (await client.get("/v2/webhooks/secret")).json()["secret"]
        for overlap in (-1, 8 * 24 * 3600, "soon"):
            answer = await client.post("/v2/webhooks/secret/rotate", json={"overlap_s": overlap})
            assert answer.status_code == 422, answer.text
            assert answer.json()["error"]["details"][0]["field"] == "overlap_s"
        assert (await client.get("/v2/webhooks/secret")).json()["secret"] == before  # nothing changed


def test_sdk_verifier_accepts_either_signature_and_refuses_malformed_headers() -> None:
    from cracker.domain.webhooks import sign

    body, at = b'{"status":"completed"}', int(time.time())
    both = sign("whsec_new", at, body, previous="whsec_old")
    assert verify_webhook("whsec_new", body, both) and verify_webhook("whsec_old", body, both)
    assert not verify_webhook("whsec_other", body, both)
    assert not verify_webhook("whsec_new", body + b" ", both)
    for header in ("", "v1=abc", f"t={at}", f"t={at},t={at},{both.split(',', 1)[1]}", f"t=x,{both.split(',', 1)[1]}",
                   f"t={at},garbage"):
        assert not verify_webhook("whsec_new", body, header), header
