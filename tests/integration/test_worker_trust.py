"""Worker keys are not trusted across tenants (issue 17): a charged rejection only where it applies,
pools serve the pool types unless an operator allows more, and every lease and outcome of a remote
pool is in the task's history, for operators. All over HTTP with real keys."""

from __future__ import annotations

import asyncio
import base64
import io
from typing import Any

import httpx
from PIL import Image

from cracker.domain.accounts import Scope
from tests.conftest import RECAPTCHA_V2_KEY, Api, wait_terminal
from tests.integration.test_workers import lease, register, worker_client

REAL_RECAPTCHA = {"url": "https://shop.example", "site_key": "6Lreal-site-key"}
PROXY = "http://user:secret@proxy.example:8080"


def png_b64() -> str:
    out = io.BytesIO()
    Image.new("L", (60, 24), 255).save(out, "PNG")
    return base64.b64encode(out.getvalue()).decode()


async def admin_client(api: Api) -> httpx.AsyncClient:
    issued = await api.runtime.accounts.create_account("operator", 0, Scope.ADMIN)
    return api.client(issued.api_key)


async def reject(pool: httpx.AsyncClient, worker_id: str, task: dict[str, Any], code: str) -> httpx.Response:
    return await pool.post(
        f"/v2/workers/{worker_id}/tasks/{task['task_id']}/reject", json={"attempt": task["attempt"], "code": code}
    )


# --- 1. a charged rejection code only where it applies ---


async def test_a_proxy_code_on_a_task_without_a_proxy_is_refused_and_charges_nothing(api_factory) -> None:  # type: ignore[no-untyped-def]
    # Its own app: tasks other tests left pending on the shared one would be leased first.
    async with api_factory() as api:
        async with await api.client_for("1.00") as client, worker_client(api) as pool:
            worker = await register(pool, ["recaptcha-v2"])
            task_id = (await client.post("/v2/tasks/recaptcha-v2", json=REAL_RECAPTCHA)).json()["task_id"]
            (leased,) = await lease(pool, worker["worker_id"])
            refused = await reject(pool, worker["worker_id"], leased, "proxy_blocked")
            still = (await client.get(f"/v2/tasks/{task_id}")).json()
            # The pool reports what really happened: accepted, and not charged.
            honest = await reject(pool, worker["worker_id"], leased, "upstream_error")
            task = await wait_terminal(client, task_id)
            balance = (await client.get("/v2/balance")).json()
        assert refused.status_code == 422, refused.text
        (detail,) = refused.json()["error"]["details"]
        assert (detail["field"], detail["code"]) == ("code", "charge_not_applicable")
        assert "proxy_blocked" in detail["message"] and "proxy" in detail["message"]
        assert still["status"] == "running"  # still the pool's to report
        assert honest.status_code == 200
        assert (task["error"]["code"], task["cost"]) == ("upstream_error", "0.0000")
        assert (balance["balance"], balance["held"]) == ("1.0000", "0.0000")


async def test_a_cloudflare_code_applies_only_to_cloudflare_tasks_sent_with_a_proxy(api_factory) -> None:  # type: ignore[no-untyped-def]
    # Its own app: tasks other tests left pending on the shared one would be leased first.
    async with api_factory() as api:
        async with await api.client_for("1.00") as client, worker_client(api) as pool:
            worker = await register(pool, ["recaptcha-v2"])
            task_id = (await client.post("/v2/tasks/recaptcha-v2", json={**REAL_RECAPTCHA, "proxy": PROXY})).json()[
                "task_id"
            ]
            (leased,) = await lease(pool, worker["worker_id"])
            cloudflare = await reject(pool, worker["worker_id"], leased, "ip_blocked_by_cloudflare")
            proxy = await reject(pool, worker["worker_id"], leased, "proxy_blocked")  # it had a proxy: applies
            task = await wait_terminal(client, task_id)
        assert cloudflare.status_code == 422
        assert "cf-clearance" in cloudflare.json()["error"]["details"][0]["message"]
        assert proxy.status_code == 200
        assert (task["error"]["code"], task["cost"]) == ("proxy_blocked", "0.0009")


async def test_an_image_task_cannot_be_rejected_with_a_charged_code(api_factory) -> None:  # type: ignore[no-untyped-def]
    """The issue's case: a pool (allowed image-to-text by the operator) ends an image task with
    proxy_blocked. Refused; the client is not charged."""
    async with api_factory(in_process_workers=False) as api:
        async with await api.client_for("1.00") as client, worker_client(api) as pool, \
                await admin_client(api) as admin:
            account_id = await pool_account(api, pool)
            granted = await admin.put(f"/v2/admin/accounts/{account_id}/pool-types", json={"types": ["image-to-text"]})
            assert granted.status_code == 200, granted.text
            worker = await register(pool, ["image-to-text"])
            task_id = (await client.post("/v2/tasks/image-to-text", json={"image_b64": png_b64()})).json()["task_id"]
            (leased,) = await lease(pool, worker["worker_id"])
            refused = await reject(pool, worker["worker_id"], leased, "too_many_attempts_solving")
            await reject(pool, worker["worker_id"], leased, "general_error")
            task = await wait_terminal(client, task_id)
    assert refused.status_code == 422
    assert (task["error"]["code"], task["cost"]) == ("general_error", "0.0000")


# --- 2. pools serve the pool types unless an operator allows more ---


async def pool_account(api: Api, pool: httpx.AsyncClient) -> str:
    key = pool.headers["x-solvium-auth"]
    record = await api.runtime.accounts.authenticate(key, Scope.WORKER)
    return record.account_id


async def test_a_worker_key_may_not_register_for_built_in_types_until_an_operator_allows_it(api: Api) -> None:
    async with worker_client(api) as pool, await admin_client(api) as admin, await api.client_for() as client:
        account_id = await pool_account(api, pool)
        refused = await pool.post("/v2/workers", json={"name": "p", "types": ["vercel", "image-to-text", "altcha"]})
        by_client = await client.put(f"/v2/admin/accounts/{account_id}/pool-types", json={"all": True})
        by_worker = await pool.put(f"/v2/admin/accounts/{account_id}/pool-types", json={"all": True})
        before = (await admin.get(f"/v2/admin/accounts/{account_id}/pool-types")).json()
        granted = await admin.put(f"/v2/admin/accounts/{account_id}/pool-types", json={"types": ["image-to-text"]})
        still_refused = await pool.post("/v2/workers", json={"name": "p", "types": ["altcha"]})
        allowed = await pool.post("/v2/workers", json={"name": "p", "types": ["vercel", "image-to-text"]})
        unknown = await admin.put(f"/v2/admin/accounts/{account_id}/pool-types", json={"types": ["nope"]})
    assert refused.status_code == 403
    error = refused.json()["error"]
    assert error["code"] == "pool_type_not_allowed"
    assert "altcha, image-to-text" in error["message"] and "vercel" not in error["message"].split(":")[0]
    assert (by_client.status_code, by_client.json()["error"]["code"]) == (401, "insufficient_scope")
    assert (by_worker.status_code, by_worker.json()["error"]["code"]) == (401, "insufficient_scope")
    assert before["types"] == [] and "image-to-text" not in before["allowed"] and "turnstile" in before["allowed"]
    assert granted.status_code == 200
    assert granted.json()["types"] == ["image-to-text"] and "image-to-text" in granted.json()["allowed"]
    assert still_refused.status_code == 403
    assert allowed.status_code == 201, allowed.text
    assert unknown.status_code == 422


async def test_a_withdrawn_grant_stops_registered_pools_at_their_next_lease(api_factory) -> None:  # type: ignore[no-untyped-def]
    async with api_factory(in_process_workers=False) as api:
        async with await api.client_for() as client, worker_client(api) as pool, await admin_client(api) as admin:
            account_id = await pool_account(api, pool)
            await admin.put(f"/v2/admin/accounts/{account_id}/pool-types", json={"all": True})
            worker = await register(pool, ["image-to-text"])
            reset = await admin.put(f"/v2/admin/accounts/{account_id}/pool-types", json={"types": []})
            task_id = (await client.post("/v2/tasks/image-to-text", json={"image_b64": png_b64()})).json()["task_id"]
            leased = await lease(pool, worker["worker_id"])
            status = (await client.get(f"/v2/tasks/{task_id}")).json()["status"]
    assert reset.json()["all"] is False and reset.json()["updated_at"] is None
    assert leased == []
    assert status == "pending"


# --- 3. every lease and outcome of a remote pool is recorded, for operators ---


async def test_the_task_history_names_each_worker_and_pool_account_that_leased_or_ended_it(api_factory) -> None:  # type: ignore[no-untyped-def]
    # Its own app: tasks other tests left pending on the shared one would be leased first.
    async with api_factory() as api:
        async with await api.client_for() as client, worker_client(api) as pool, await admin_client(api) as admin:
            account_id = await pool_account(api, pool)
            first = await register(pool, ["vercel"])
            second = await pool.post("/v2/workers", json={"name": "pool-b", "types": ["vercel"]})
            second_id = second.json()["worker_id"]
            task_id = (await client.post("/v2/tasks/vercel", json={"challenge_token": "abc"})).json()["task_id"]
            assert len(await lease(pool, first["worker_id"])) == 1
            await pool.delete(f"/v2/workers/{first['worker_id']}")  # handed back
            (leased,) = await lease(pool, second_id)
            await reject(pool, second_id, leased, "upstream_error")
            done_id = (await client.post("/v2/tasks/vercel", json={"challenge_token": "abc"})).json()["task_id"]
            (other,) = await lease(pool, second_id)
            await pool.post(f"/v2/workers/{second_id}/tasks/{done_id}/complete",
                            json={"attempt": other["attempt"], "solution": {"token": "t"}})
            history = await admin.get(f"/v2/admin/tasks/{task_id}/history")
            completed = (await admin.get(f"/v2/admin/tasks/{done_id}/history")).json()
            by_client = await client.get(f"/v2/admin/tasks/{task_id}/history")
            by_pool = await pool.get(f"/v2/admin/tasks/{task_id}/history")
            missing = await admin.get("/v2/admin/tasks/01959e02-08fd-7000-8cbe-f682a959b3c1/history")
        assert history.status_code == 200, history.text
        body = history.json()
        assert (body["task_id"], body["type"], body["status"]) == (task_id, "vercel", "rejected")
        assert [(e["event"], e["worker_id"], e["worker_name"], e["pool_account_id"], e["attempt"], e["error_code"])
                for e in body["events"]] == [
            ("leased", first["worker_id"], "pool", account_id, 1, None),
            ("leased", second_id, "pool-b", account_id, 2, None),
            ("rejected", second_id, "pool-b", account_id, 2, "upstream_error"),
        ]
        assert [(e["event"], e["worker_id"]) for e in completed["events"]] == [
            ("leased", second_id), ("completed", second_id)
        ]
        assert by_client.status_code == 401 and by_pool.status_code == 401
        assert missing.status_code == 404


async def test_a_built_in_worker_leaves_no_history(api: Api) -> None:
    """Only remote pools are recorded: built-in workers are the operator's own code."""
    async with await api.client_for() as client, await admin_client(api) as admin:
        body = {"url": "https://shop.example", "site_key": RECAPTCHA_V2_KEY}
        task_id = (await client.post("/v2/tasks/recaptcha-v2", json=body)).json()["task_id"]
        task = await wait_terminal(client, task_id)
        await asyncio.sleep(0)
        history = (await admin.get(f"/v2/admin/tasks/{task_id}/history")).json()
    assert task["status"] == "completed"
    assert history["events"] == []


# --- 4. operators limit a pool to named accounts ---


async def test_a_pool_limited_to_named_accounts_leases_only_their_tasks(api_factory) -> None:  # type: ignore[no-untyped-def]
    async with api_factory() as api:
        a_id, a_key = await api.account()
        _, b_key = await api.account()
        async with api.client(a_key) as a, api.client(b_key) as b, worker_client(api) as pool, \
                await admin_client(api) as admin:
            pool_id = await pool_account(api, pool)
            limited = await admin.put(f"/v2/admin/accounts/{pool_id}/pool-accounts", json={"accounts": [a_id]})
            by_pool = await pool.put(f"/v2/admin/accounts/{pool_id}/pool-accounts", json={"accounts": None})
            unknown = await admin.put(f"/v2/admin/accounts/{pool_id}/pool-accounts",
                                      json={"accounts": ["01959e02-08fd-7000-8cbe-f682a959b3c1"]})
            worker = await register(pool, ["vercel"])
            theirs = (await b.post("/v2/tasks/vercel", json={"challenge_token": "b"})).json()["task_id"]
            mine = (await a.post("/v2/tasks/vercel", json={"challenge_token": "a"})).json()["task_id"]
            leased = await lease(pool, worker["worker_id"], max_tasks=10)
            waiting = (await b.get(f"/v2/tasks/{theirs}")).json()["status"]
            shown = (await admin.get(f"/v2/admin/accounts/{pool_id}/pool-accounts")).json()
            lifted = await admin.put(f"/v2/admin/accounts/{pool_id}/pool-accounts", json={"accounts": None})
            after = await lease(pool, worker["worker_id"], max_tasks=10)
    assert limited.status_code == 200, limited.text
    assert limited.json() == {"account_id": pool_id, "accounts": [a_id]}
    assert by_pool.status_code == 401
    assert unknown.status_code == 404
    assert [t["task_id"] for t in leased] == [mine]
    assert waiting == "pending"
    assert shown["accounts"] == [a_id]
    assert lifted.json()["accounts"] is None
    assert [t["task_id"] for t in after] == [theirs]
