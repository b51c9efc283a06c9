"""Billing: hold at create, capture on completion, release on rejection unless charged; the ledger."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from cracker.domain.tasks import ClaimedTask, Task
from cracker.domain.workers import Completion
from cracker.runtime import Runtime
from tests.conftest import TURNSTILE_PASS, Api, wait_terminal

TURNSTILE = {"url": "https://example.com", "site_key": TURNSTILE_PASS}


async def assert_ledger_matches_balances(runtime: Runtime) -> None:
    ledger, balances = await runtime.store.read(lambda r: (r.ledger_totals(), r.account_balances()))
    for account_id, (available, held) in balances.items():
        assert ledger.get(account_id, (0, 0)) == (available, held), account_id
        assert available >= 0 and held >= 0


async def complete(api: Api, claim: ClaimedTask, solution: dict[str, Any]) -> Task | None:
    """Complete the way production does: through the worker service's group-committing batcher."""
    return await api.runtime.worker_service.complete(
        Completion(claim.task.id, claim.lease_owner, claim.attempt, solution)
    )


async def test_hold_then_capture(api_factory) -> None:  # type: ignore[no-untyped-def]
    async with api_factory(in_process_workers=False) as api:
        async with await api.client_for("1.00") as client:
            created = (await client.post("/v2/tasks/turnstile", json=TURNSTILE)).json()
            held = (await client.get("/v2/balance")).json()
            claims = await api.runtime.tasks.claim(["turnstile"], "test-worker", 10, 60)
            assert [c.task.id for c in claims] == [created["task_id"]]
            running = (await client.get(f"/v2/tasks/{created['task_id']}")).json()
            await complete(api, claims[0], {"token": "t"})
            done = (await client.get(f"/v2/tasks/{created['task_id']}")).json()
            after = (await client.get("/v2/balance")).json()
        await assert_ledger_matches_balances(api.runtime)
    assert held == {"balance": "0.9991", "held": "0.0009", "currency": "USD"}
    assert running["status"] == "running" and running["started_at"] is not None and running["cost"] is None
    assert done["status"] == "completed" and done["cost"] == "0.0009"
    assert after == {"balance": "0.9991", "held": "0.0000", "currency": "USD"}


async def test_release_on_rejection_and_keep_when_charged(api_factory) -> None:  # type: ignore[no-untyped-def]
    async with api_factory(in_process_workers=False) as api:
        async with await api.client_for("1.00") as client:
            refunded = (await client.post("/v2/tasks/turnstile", json=TURNSTILE)).json()
            charged = (await client.post("/v2/tasks/turnstile", json=TURNSTILE)).json()
            await api.runtime.tasks.reject(refunded["task_id"], "upstream_timeout")
            await api.runtime.tasks.reject(charged["task_id"], "proxy_blocked", "Proxy blocked")
            first = (await client.get(f"/v2/tasks/{refunded['task_id']}")).json()
            second = (await client.get(f"/v2/tasks/{charged['task_id']}")).json()
            balance = (await client.get("/v2/balance")).json()
        await assert_ledger_matches_balances(api.runtime)
    assert first["error"]["code"] == "upstream_timeout" and first["cost"] == "0.0000"
    assert second["error"] == {
        "code": "proxy_blocked", "message": "Proxy blocked", "retryable": True,
        "doc_url": "http://testserver/errors/proxy-blocked",
    }
    assert second["cost"] == "0.0009"
    assert balance == {"balance": "0.9991", "held": "0.0000", "currency": "USD"}


async def test_a_lost_lease_cannot_complete_and_nothing_is_captured_twice(api_factory) -> None:  # type: ignore[no-untyped-def]
    async with api_factory(in_process_workers=False) as api:
        async with await api.client_for("1.00") as client:
            created = (await client.post("/v2/tasks/turnstile", json=TURNSTILE)).json()
            (claim,) = await api.runtime.tasks.claim(["turnstile"], "worker-a", 1, 60)
            assert await complete(api, claim, {"token": "first"}) is not None
            # The same outcome again (a retried report, a confused worker): refused by the fence.
            assert await complete(api, claim, {"token": "second"}) is None
            assert await api.runtime.tasks.reject(created["task_id"], "general_error", claim=claim) is None
            assert await api.runtime.tasks.reject(created["task_id"], "general_error") is None
            done = (await client.get(f"/v2/tasks/{created['task_id']}")).json()
            balance = (await client.get("/v2/balance")).json()
        await assert_ledger_matches_balances(api.runtime)
    assert done["solution"] == {"token": "first"}
    assert balance == {"balance": "0.9991", "held": "0.0000", "currency": "USD"}


async def test_concurrent_creates_never_overspend(api: Api) -> None:
    # 0.0045 USD pays for exactly five 0.0009 turnstile tasks; fifty arrive at once.
    async with await api.client_for("0.0045") as client:
        responses = await asyncio.gather(
            *(client.post("/v2/tasks/turnstile", json=TURNSTILE) for _ in range(50))
        )
        statuses = Counter(r.status_code for r in responses)
        for r in responses:
            if r.status_code == 201:
                await wait_terminal(client, r.json()["task_id"])
        balance = (await client.get("/v2/balance")).json()
    assert statuses == {201: 5, 402: 45}
    assert balance == {"balance": "0.0000", "held": "0.0000", "currency": "USD"}
    await assert_ledger_matches_balances(api.runtime)


async def test_balance_shows_available_and_held(api: Api) -> None:
    async with await api.client_for("2.5") as client:
        response = await client.get("/v2/balance")
    assert response.status_code == 200
    assert response.json() == {"balance": "2.5000", "held": "0.0000", "currency": "USD"}


async def test_finished_tasks_age_out_but_the_ledger_stays(api_factory) -> None:  # type: ignore[no-untyped-def]
    import asyncio as _asyncio

    async with api_factory() as api:
        async with await api.client_for("1.00") as client:
            created = (await client.post("/v2/tasks/turnstile", json=TURNSTILE)).json()
            await wait_terminal(client, created["task_id"])
            pending_elsewhere = await api.runtime.tasks.purge_finished(3600)
            await _asyncio.sleep(0.05)
            purged = await api.runtime.tasks.purge_finished(0.01)
            gone = await client.get(f"/v2/tasks/{created['task_id']}")
            balance = (await client.get("/v2/balance")).json()
        await assert_ledger_matches_balances(api.runtime)
    assert pending_elsewhere == 0 and purged == 1
    assert gone.status_code == 404
    assert balance == {"balance": "0.9991", "held": "0.0000", "currency": "USD"}


async def test_solver_failures_release_the_hold(api_factory, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Every way a built-in solve fails without the client's fault gives the money back: a solver
    that crashes (general_error), one that answers an empty token (empty_token), an image whose
    pixels cannot be decoded (invalid_image). Each through the real in-process worker."""
    import base64

    from cracker.solvers.sandbox import SandboxSolver
    from tests.unit.ocr.test_images import png_declaring

    async def crash(self: SandboxSolver, job: Any) -> dict[str, Any]:
        raise RuntimeError("the solver fell over")

    async with api_factory() as api:
        async with await api.client_for("1.00") as client:
            monkeypatch.setattr(SandboxSolver, "solve", crash)
            crashed = (await client.post("/v2/tasks/turnstile", json=TURNSTILE)).json()
            crashed = await wait_terminal(client, crashed["task_id"])

            async def empty(self: SandboxSolver, job: Any) -> dict[str, Any]:
                return {"token": ""}

            monkeypatch.setattr(SandboxSolver, "solve", empty)
            emptied = (await client.post("/v2/tasks/turnstile", json=TURNSTILE)).json()
            emptied = await wait_terminal(client, emptied["task_id"])
            corrupt = base64.b64encode(png_declaring(40, 20, b"not zlib data")).decode()
            unreadable = (await client.post("/v2/tasks/image-to-text", json={"image_b64": corrupt})).json()
            unreadable = await wait_terminal(client, unreadable["task_id"])
            balance = (await client.get("/v2/balance")).json()
        await assert_ledger_matches_balances(api.runtime)
    assert [(t["status"], t["error"]["code"], t["cost"]) for t in (crashed, emptied, unreadable)] == [
        ("rejected", "general_error", "0.0000"), ("rejected", "empty_token", "0.0000"),
        ("rejected", "invalid_image", "0.0000"),
    ]
    assert balance == {"balance": "1.0000", "held": "0.0000", "currency": "USD"}
