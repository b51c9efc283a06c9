"""POST /v2/tasks/batch: many tasks in one request, one transaction, one answer per item, in order."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.conftest import TURNSTILE_PASS, Api, wait_terminal
from tests.integration.test_billing import assert_ledger_matches_balances

TURNSTILE = {"type": "turnstile", "url": "https://example.com", "site_key": TURNSTILE_PASS}


def codes(results: list[dict[str, Any]]) -> list[Any]:
    return [r["error"]["code"] if r["error"] else r["status"] for r in results]


async def test_each_item_is_answered_in_its_place(api: Api) -> None:
    """Valid items are created, each bad one gets the error a single create would (status beside
    it), in the order sent; only the created items are charged."""
    async with await api.client_for("1.00") as client:
        answer = await client.post("/v2/tasks/batch", json={"tasks": [
            TURNSTILE,
            {"type": "turnstile", "site_key": TURNSTILE_PASS},  # no url
            {"type": "no-such-type", "url": "https://example.com"},
            "not an object",
            {"url": "https://example.com", "site_key": TURNSTILE_PASS},  # no type
            {**TURNSTILE, "callback_url": "http://127.0.0.1:1/hook"},  # a loopback callback is refused
            {**TURNSTILE, "action": "second"},
        ]})
        assert answer.status_code == 200, answer.text
        results = answer.json()["results"]
        created = [r["task"]["task_id"] for r in results if r["task"]]
        for task_id in created:
            assert (await wait_terminal(client, task_id))["status"] == "completed"
        balance = (await client.get("/v2/balance")).json()
    assert codes(results) == [
        201, "validation_failed", "offer_not_found", "invalid_request", "validation_failed", "validation_failed", 201,
    ]
    assert [r["status"] for r in results] == [201, 422, 400, 400, 422, 422, 201]
    assert results[1]["error"]["details"][0]["field"] == "url"
    assert results[4]["error"]["details"][0]["field"] == "type"
    assert results[5]["error"]["details"][0]["field"] == "callback_url"
    assert results[0]["task"]["type"] == "turnstile" and results[0]["error"] is None
    assert all(r["error"]["request_id"] == answer.headers["x-request-id"] for r in results if r["error"])
    assert len(set(created)) == 2
    assert balance == {"balance": "0.9982", "held": "0.0000", "currency": "USD"}
    await assert_ledger_matches_balances(api.runtime)


async def test_items_are_held_in_order_until_the_balance_runs_out(api: Api) -> None:
    """One transaction, holds in order: the item the balance left cannot pay for gets
    insufficient_balance and nothing of it is written; the items before and after are judged
    each on the balance then left."""
    async with await api.client_for("0.0020") as client:
        answer = await client.post("/v2/tasks/batch", json={"tasks": [TURNSTILE] * 3})
        results = answer.json()["results"]
        for r in results:
            if r["task"]:
                await wait_terminal(client, r["task"]["task_id"])
        balance = (await client.get("/v2/balance")).json()
    assert codes(results) == [201, 201, "insufficient_balance"]
    assert results[2]["status"] == 402
    assert balance["balance"] == "0.0002"
    await assert_ledger_matches_balances(api.runtime)


async def test_idempotency_key_names_the_whole_batch(api: Api) -> None:
    """The same key and body answer the same items the same way (errors included) with no second
    charge; the same key with another body is refused and changes nothing."""
    async with await api.client_for("1.00") as client:
        body = {"tasks": [TURNSTILE, {"type": "turnstile"}]}
        headers = {"Idempotency-Key": "batch-7"}
        first = await client.post("/v2/tasks/batch", json=body, headers=headers)
        again = await client.post("/v2/tasks/batch", json=body, headers=headers)
        other = await client.post("/v2/tasks/batch", json={"tasks": [TURNSTILE]}, headers=headers)
        task_id = first.json()["results"][0]["task"]["task_id"]
        await wait_terminal(client, task_id)
        balance = (await client.get("/v2/balance")).json()
    assert "idempotent-replayed" not in first.headers
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["results"][0]["task"]["task_id"] == task_id
    assert codes(again.json()["results"]) == [201, "validation_failed"]
    assert again.json()["results"][1]["error"]["details"] == first.json()["results"][1]["error"]["details"]
    assert other.status_code == 400 and other.json()["error"]["code"] == "invalid_request"
    assert balance["balance"] == "0.9991"


async def test_concurrent_batches_with_one_key_charge_once(api: Api) -> None:
    """Two batches racing with one key: one creates, the other answers its tasks (the key's row is
    written in the batch's transaction, so the loser rolls back its holds)."""
    async with await api.client_for("1.00") as client:
        body = {"tasks": [TURNSTILE, TURNSTILE]}
        headers = {"Idempotency-Key": "race"}
        answers = await asyncio.gather(*[client.post("/v2/tasks/batch", json=body, headers=headers) for _ in range(4)])
        ids = {tuple(r["task"]["task_id"] for r in a.json()["results"]) for a in answers}
        for task_id in next(iter(ids)):
            await wait_terminal(client, task_id)
        balance = (await client.get("/v2/balance")).json()
    assert [a.status_code for a in answers] == [200] * 4
    assert len(ids) == 1
    assert balance["balance"] == "0.9982"
    await assert_ledger_matches_balances(api.runtime)


async def test_keys_are_per_account_and_replays_show_no_other_account(api: Api) -> None:
    """Another account's batch with the same key is its own batch: it neither replays nor sees the
    first account's tasks, and is charged to itself."""
    async with await api.client_for("1.00") as first, await api.client_for("1.00") as second:
        headers = {"Idempotency-Key": "shared"}
        a = await first.post("/v2/tasks/batch", json={"tasks": [TURNSTILE]}, headers=headers)
        b = await second.post("/v2/tasks/batch", json={"tasks": [TURNSTILE]}, headers=headers)
        await wait_terminal(first, a.json()["results"][0]["task"]["task_id"])
        await wait_terminal(second, b.json()["results"][0]["task"]["task_id"])
        stolen = await second.get(f"/v2/tasks/{a.json()['results'][0]['task']['task_id']}")
        balances = [(await c.get("/v2/balance")).json()["balance"] for c in (first, second)]
    assert "idempotent-replayed" not in b.headers
    assert a.json()["results"][0]["task"]["task_id"] != b.json()["results"][0]["task"]["task_id"]
    assert stolen.status_code == 404
    assert balances == ["0.9991", "0.9991"]


async def test_a_batch_is_bounded_and_must_be_well_formed(api: Api) -> None:
    """Empty, over 100 items, or not an object with a tasks array: the whole request is refused
    with the envelope and nothing is created or charged."""
    async with await api.client_for("1.00") as client:
        empty = await client.post("/v2/tasks/batch", json={"tasks": []})
        too_many = await client.post("/v2/tasks/batch", json={"tasks": [TURNSTILE] * 101})
        not_list = await client.post("/v2/tasks/batch", json={"tasks": TURNSTILE})
        not_object = await client.post("/v2/tasks/batch", json=[TURNSTILE])
        bad_json = await client.post("/v2/tasks/batch", content=b"{", headers={"content-type": "application/json"})
        balance = (await client.get("/v2/balance")).json()
    assert [r.status_code for r in (empty, too_many, not_list)] == [422, 422, 422]
    assert all(r.json()["error"]["details"][0]["field"] == "tasks" for r in (empty, too_many, not_list))
    assert not_object.status_code == 400 and not_object.json()["error"]["code"] == "invalid_request"
    assert bad_json.status_code == 400 and bad_json.json()["error"]["code"] == "invalid_request"
    assert balance == {"balance": "1.0000", "held": "0.0000", "currency": "USD"}


async def test_each_item_counts_against_the_rate_limit(api_factory) -> None:  # type: ignore[no-untyped-def]
    """A batch is not a way around the rate limit: its items take one token each (the batch goes
    into debt past the burst), so the account's next request waits."""
    async with api_factory(rate_limit_per_s=0.5, rate_limit_burst=10) as api:
        async with await api.client_for("1.00") as client:
            batch = await client.post("/v2/tasks/batch", json={"tasks": [TURNSTILE] * 10})
            after = await client.get("/v2/balance")
    assert batch.status_code == 200
    assert codes(batch.json()["results"]) == [201] * 10
    assert after.status_code == 429
    assert after.json()["error"]["code"] == "rate_limit_exceeded"
    assert int(after.headers["retry-after"]) >= 1


async def test_the_batch_is_in_the_openapi_document(api: Api) -> None:
    """Generated clients see the route, its items typed as POST /v2/tasks's, and its answer."""
    async with api.client() as client:
        doc = (await client.get("/openapi.json")).json()
    operation = doc["paths"]["/v2/tasks/batch"]["post"]
    assert operation["operationId"] == "create_tasks_batch"
    body = doc["components"]["schemas"]["BatchRequest"]["properties"]["tasks"]
    refs = [item["$ref"].rsplit("/", 1)[1] for item in body["items"]["oneOf"]]
    assert "TurnstileTaskWithType" in refs
    assert all(ref in doc["components"]["schemas"] for ref in refs)
    assert body["maxItems"] == 100
    assert operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("BatchResponse")
