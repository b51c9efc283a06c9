"""The Python SDK against the real server, in-process (async) and as a subprocess (sync and async)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from cracker.domain.catalogue import API_CODES
from cracker.domain.money import format_usd, parse_usd
from cracker.domain.webhooks import sign
from cracker.sdk import (
    AlreadyReported,
    InvalidApiKey,
    NotFound,
    Report,
    Solvium,
    SolviumError,
    Task,
    TaskNotCompleted,
    TaskRejected,
    ValidationFailed,
    verify_webhook,
)
from cracker.sdk._errors import ERROR_CLASSES
from tests.conftest import HCAPTCHA_KEY, TURNSTILE_FAIL, TURNSTILE_PASS, Api, LiveServer


def test_importable_with_only_httpx() -> None:
    code = (
        "import sys, cracker.sdk\n"
        "heavy = {'fastapi', 'pydantic', 'sqlalchemy', 'starlette', 'uvicorn', 'orjson', 'alembic'}\n"
        "loaded = sorted({m.split('.')[0] for m in sys.modules} & heavy)\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_one_exception_class_per_api_code() -> None:
    assert set(ERROR_CLASSES) == set(API_CODES)
    assert all(issubclass(cls, SolviumError) for cls in ERROR_CLASSES.values())


@pytest.fixture
def live_client(live_server: LiveServer) -> Iterator[Solvium]:
    _, key = live_server.new_account("1.00")
    with Solvium(api_key=key, base_url=live_server.base_url) as client:
        yield client


def test_seed_page_calls_work_sync(live_client: Solvium) -> None:
    assert live_client.health_sync()["status"] == "ok"
    assert live_client.balance_sync() == {"balance": "1.0000", "held": "0.0000", "currency": "USD"}
    created = live_client.create_task_sync("turnstile", url="https://a.example", site_key=TURNSTILE_PASS)
    task = live_client.get_task_sync(created["task_id"], wait=10)
    assert isinstance(task, Task)
    assert task["status"] == "completed" and task["solution"] == {"token": "XXXX.DUMMY.TOKEN.XXXX"}
    assert task.token == "XXXX.DUMMY.TOKEN.XXXX"
    first_pool = live_client._client
    live_client.balance_sync()
    assert live_client._client is first_pool  # one connection pool for every sync call


def test_solve_and_per_type_methods_sync(live_client: Solvium) -> None:
    pow_task = live_client.pow_sha256_sync(data="sdk", difficulty=3)
    assert pow_task.status == "completed" and pow_task["solution"]["hash"].startswith("000")
    typed = live_client.turnstile_sync(site_key=TURNSTILE_PASS, url="https://a.example")
    assert isinstance(typed, Task) and typed.token == "XXXX.DUMMY.TOKEN.XXXX"
    hcaptcha = live_client.hcaptcha_sync(site_key=HCAPTCHA_KEY, url="https://a.example")
    assert hcaptcha.token == "10000000-aaaa-bbbb-cccc-000000000001"


def test_legacy_names_return_the_solution_string(live_client: Solvium) -> None:
    assert live_client.turnstile_sync(TURNSTILE_PASS, "https://a.example") == "XXXX.DUMMY.TOKEN.XXXX"
    assert live_client.noname_sync(HCAPTCHA_KEY, "https://a.example") == "10000000-aaaa-bbbb-cccc-000000000001"
    token = live_client.recaptcha_v2_sync("6LeIxAcTAAAAAJcZVRqyHh71UMIEGNQ_MXjiZKhI", "https://a.example")
    assert isinstance(token, str) and token


def test_errors_are_typed(live_client: Solvium, live_server: LiveServer) -> None:
    with pytest.raises(TaskRejected) as rejected:
        live_client.turnstile_sync(site_key=TURNSTILE_FAIL, url="https://a.example")
    assert rejected.value.code == "challenge_error" and rejected.value.task["status"] == "rejected"
    with pytest.raises(ValidationFailed) as invalid:
        live_client.create_task_sync("turnstile", url="ftp://x", site_key="k")
    assert invalid.value.details[0]["field"] == "url" and invalid.value.request_id
    with pytest.raises(NotFound):
        live_client.get_task_sync("01959e02-08fd-7000-8cbe-f682a959b3c1")
    with Solvium(api_key="ck_wrong", base_url=live_server.base_url) as wrong, pytest.raises(InvalidApiKey) as bad:
        wrong.balance_sync()
    assert bad.value.status_code == 401 and bad.value.doc_url.endswith("/errors/invalid-api-key")


async def test_sync_twins_work_inside_a_running_event_loop(live_client: Solvium) -> None:
    """A sync call made from a coroutine (a notebook, a sync library inside an async app) must not
    fail with "event loop is already running"; this test body runs on the loop."""
    assert asyncio.get_running_loop().is_running()
    assert live_client.balance_sync()["currency"] == "USD"


async def test_async_client_against_the_live_server(live_server: LiveServer) -> None:
    _, key = live_server.new_account("1.00")
    async with Solvium(api_key=key, base_url=live_server.base_url) as client:
        task, balance = await asyncio.gather(
            client.turnstile(site_key=TURNSTILE_PASS, url="https://a.example"), client.balance()
        )
        assert task.token == "XXXX.DUMMY.TOKEN.XXXX" and balance["currency"] == "USD"
        assert await client.turnstile(TURNSTILE_PASS, "https://a.example") == "XXXX.DUMMY.TOKEN.XXXX"
    assert client._async_client is None  # closed by the context manager


async def test_async_client_in_process(api: Api) -> None:
    _, key = await api.account()
    client = Solvium(api_key=key, base_url="http://testserver", async_transport=httpx.ASGITransport(app=api.app))
    async with client:
        created = await client.create_task("pow-sha256", data="in-process", difficulty=2)
        done = await client.wait(created)
        cancelled = await client.cancel(done.task_id)
    assert done.status == "completed" and cancelled == done


def test_batch_create_sync(live_client: Solvium) -> None:
    """create_tasks_sync: per item its Task or its typed error, in order; the tasks are real."""
    results = live_client.create_tasks_sync([
        {"type": "turnstile", "url": "https://a.example", "site_key": TURNSTILE_PASS},
        {"type": "turnstile", "site_key": TURNSTILE_PASS},
    ])
    assert isinstance(results[0], Task) and results[0].status in ("pending", "running", "completed")
    assert isinstance(results[1], ValidationFailed) and results[1].status_code == 422
    assert results[1].details[0]["field"] == "url"
    assert live_client.get_task_sync(results[0].task_id, wait=10).token == "XXXX.DUMMY.TOKEN.XXXX"


async def test_batch_create_async_is_retried_as_a_whole(api: Api) -> None:
    """create_tasks with one Idempotency-Key twice: the same tasks, charged once."""
    _, key = await api.account("1.00")
    client = Solvium(api_key=key, base_url="http://testserver", async_transport=httpx.ASGITransport(app=api.app))
    async with client:
        tasks = [{"type": "pow-sha256", "data": f"batch-{i}", "difficulty": 2} for i in range(3)]
        first = await client.create_tasks(tasks, idempotency_key="sdk-batch")
        again = await client.create_tasks(tasks, idempotency_key="sdk-batch")
        done = [await client.wait(t) for t in first if isinstance(t, Task)]
        balance = await client.balance()
    assert [t.task_id for t in first if isinstance(t, Task)] == [t.task_id for t in again if isinstance(t, Task)]
    assert len(done) == 3 and all(t.status == "completed" for t in done)
    price = await api.runtime.offers.price("pow-sha256")
    assert price is not None
    assert balance["balance"] == format_usd(parse_usd("1.00") - 3 * price)


async def test_retries_honour_retry_after(api_factory) -> None:  # type: ignore[no-untyped-def]
    async with api_factory(rate_limit_per_s=2, rate_limit_burst=1) as api:
        _, key = await api.account()
        client = Solvium(api_key=key, base_url="http://testserver", async_transport=httpx.ASGITransport(app=api.app))
        async with client:
            started = time.monotonic()
            results = [await client.balance() for _ in range(3)]
            elapsed = time.monotonic() - started
    assert all(r["currency"] == "USD" for r in results)
    assert elapsed >= 1.0  # Retry-After: 1 was waited out, twice


def test_create_is_retried_with_one_idempotency_key() -> None:
    seen: list[str] = []

    def flaky(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["idempotency-key"])
        if len(seen) < 3:
            return httpx.Response(503, json={"error": {"code": "service_unavailable", "message": "busy",
                                                        "retryable": True, "doc_url": "", "request_id": "r"}},
                                  headers={"Retry-After": "0"})
        return httpx.Response(201, json={"task_id": "t", "status": "pending"})

    with Solvium(api_key="k", transport=httpx.MockTransport(flaky)) as client:
        task = client.create_task_sync("turnstile", url="https://a.example", site_key="k")
    assert task.status == "pending"
    assert len(seen) == 3 and len(set(seen)) == 1


def test_non_retryable_errors_are_not_retried() -> None:
    calls: list[int] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(402, json={"error": {"code": "insufficient_balance", "message": "top up",
                                                    "retryable": False, "doc_url": "", "request_id": "r"}})

    with Solvium(api_key="k", transport=httpx.MockTransport(refuse)) as client, pytest.raises(SolviumError) as err:
        client.create_task_sync("turnstile", url="https://a.example", site_key="k")
    assert err.value.code == "insufficient_balance" and calls == [1]


def test_verify_webhook() -> None:
    body: Any = b'{"task_id": "t"}'
    header = sign("whsec_x", int(time.time()), body)
    assert verify_webhook("whsec_x", body, header)
    assert not verify_webhook("whsec_y", body, header)
    assert not verify_webhook("whsec_x", body + b" ", header)
    assert not verify_webhook("whsec_x", body, sign("whsec_x", int(time.time()) - 3600, body))
    assert not verify_webhook("whsec_x", body, "garbage")


def test_cracker_solve_command(live_server: LiveServer) -> None:
    _, key = live_server.new_account("1.00")
    env = {**live_server.env, "CRACKER_API_KEY": key, "CRACKER_URL": live_server.base_url}
    ok = subprocess.run([sys.executable, "-m", "cracker", "solve", "turnstile", "--url", "https://a.example",
                         "--site-key", TURNSTILE_PASS], env=env, capture_output=True, text=True, timeout=60,
                        check=False)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == "XXXX.DUMMY.TOKEN.XXXX"
    assert "completed" in ok.stderr
    pow_json = subprocess.run([sys.executable, "-m", "cracker", "solve", "pow-sha256", "--data", "cli",
                               "--difficulty", "3", "--json"], env=env, capture_output=True, text=True, timeout=60,
                              check=False)
    assert pow_json.returncode == 0, pow_json.stderr
    import json as _json

    assert _json.loads(pow_json.stdout)["solution"]["hash"].startswith("000")
    bad = subprocess.run([sys.executable, "-m", "cracker", "solve", "turnstile", "--url", "https://a.example",
                          "--site-key", TURNSTILE_FAIL], env=env, capture_output=True, text=True, timeout=60,
                         check=False)
    assert bad.returncode == 1
    assert "challenge_error" in bad.stderr and "/errors/challenge-error" in bad.stderr


def test_reports_sync_against_the_live_server(live_server: LiveServer) -> None:
    """Protects the SDK's report calls (sync): a wrong answer refunded and typed, a right one
    recorded, a second report and another account's task raised as their typed errors."""
    _, key = live_server.new_account("1.00")
    _, other_key = live_server.new_account("1.00")
    with Solvium(api_key=key, base_url=live_server.base_url) as client, \
            Solvium(api_key=other_key, base_url=live_server.base_url) as other:
        # Seven completed tasks: the default share (0.15) then allows one refund.
        tasks = [client.turnstile_sync(site_key=TURNSTILE_PASS, url="https://a.example") for _ in range(7)]
        with pytest.raises(NotFound):
            other.report_incorrect_sync(tasks[0].task_id)
        wrong = client.report_incorrect_sync(tasks[0].task_id)
        right = client.report_correct_sync(tasks[1].task_id)
        with pytest.raises(AlreadyReported) as again:
            client.report_incorrect_sync(tasks[1].task_id)
        balance = client.balance_sync()
    assert isinstance(wrong, Report) and wrong.task_id == tasks[0].task_id
    assert (wrong.correct, wrong.refunded, wrong.refund, wrong.refund_refused, wrong.balance) == (
        False, True, "0.0009", None, "0.9946"
    )
    assert (right.correct, right.refunded, right.refund, right.labelled) == (True, False, "0.0000", False)
    assert again.value.status_code == 409 and again.value.code == "already_reported"
    assert balance["balance"] == "0.9946"


async def test_reports_async_against_the_live_server(live_server: LiveServer) -> None:
    """Protects the SDK's report calls (async): the same answers as the sync twins, and a report
    of a task that is not completed raised as TaskNotCompleted."""
    _, key = live_server.new_account("1.00")
    async with Solvium(api_key=key, base_url=live_server.base_url) as client:
        tasks = [await client.turnstile(site_key=TURNSTILE_PASS, url="https://a.example") for _ in range(7)]
        wrong, right = await asyncio.gather(
            client.report_incorrect(tasks[0].task_id), client.report_correct(tasks[1].task_id)
        )
        rejected = await client.create_task("turnstile", site_key=TURNSTILE_FAIL, url="https://a.example")
        with pytest.raises(TaskRejected):
            await client.wait(rejected)
        with pytest.raises(TaskNotCompleted):
            await client.report_incorrect(rejected.task_id)
    assert (wrong.refunded, wrong.refund, right.correct, right.refunded) == (True, "0.0009", True, False)


def test_a_report_is_sent_once_not_retried() -> None:
    """Protects against a retried report: its first try may have been recorded, and a second
    report is refused, so the SDK sends it once and raises what came back."""
    calls: list[bytes] = []

    def busy(request: httpx.Request) -> httpx.Response:
        calls.append(request.content)
        return httpx.Response(503, json={"error": {"code": "service_unavailable", "message": "busy",
                                                    "retryable": True, "doc_url": "", "request_id": "r"}},
                              headers={"Retry-After": "0"})

    with Solvium(api_key="k", transport=httpx.MockTransport(busy)) as client, pytest.raises(SolviumError) as err:
        client.report_incorrect_sync("t", expected="AB12")
    assert err.value.code == "service_unavailable" and calls == [b'{"correct":false,"expected":"AB12"}']
