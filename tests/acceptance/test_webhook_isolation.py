"""Webhooks against the real server: one account's slow receiver never delays another's delivery,
and callbacks cannot reach (or map) the operator's internal network."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.acceptance.receivers import receiver
from tests.conftest import TURNSTILE_PASS, LiveServer, started_server

TURNSTILE = {"url": "https://example.com", "site_key": TURNSTILE_PASS}


@pytest.fixture(scope="module")
def lab_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """Callbacks may reach this machine's receivers (any port); short deadlines and small slots."""
    with started_server(
        tmp_path_factory.mktemp("webhooks"), CRACKER_WEBHOOK_ALLOW_PRIVATE="true",
        CRACKER_WEBHOOK_ALLOW_ANY_PORT="true", CRACKER_WEBHOOK_POLL_S="0.05", CRACKER_WEBHOOK_TIMEOUT_S="3",
        CRACKER_WEBHOOK_CONCURRENCY="8", CRACKER_WEBHOOK_ACCOUNT_CONCURRENCY="2",
    ) as server:
        yield server


def _create(server: LiveServer, key: str, callback_url: str) -> httpx.Response:
    return httpx.post(f"{server.base_url}/v2/tasks/turnstile", headers={"x-solvium-auth": key},
                      json={**TURNSTILE, "callback_url": callback_url})


def _deliveries(server: LiveServer, key: str, task_id: str, timeout: float = 20.0) -> list[dict[str, Any]]:
    """The task's deliveries once its first attempt is logged."""
    deadline = time.monotonic() + timeout
    while True:
        log: list[dict[str, Any]] = httpx.get(
            f"{server.base_url}/v2/tasks/{task_id}/deliveries", headers={"x-solvium-auth": key}
        ).json()["deliveries"]
        if (log and log[0]["attempts"]) or time.monotonic() > deadline:
            return log
        time.sleep(0.05)


def test_a_trickling_receiver_does_not_delay_another_accounts_delivery(lab_server: LiveServer) -> None:
    _, slow_key = lab_server.new_account()
    _, key = lab_server.new_account()
    with receiver(trickle_s=40) as slow, receiver() as normal:
        slow_tasks = [_create(lab_server, slow_key, slow.url).json()["task_id"] for _ in range(12)]
        assert slow.wait_for(1, timeout=20), "the slow receiver was never called"
        started = time.monotonic()
        assert _create(lab_server, key, normal.url).status_code == 201
        # Generous: the delivery takes milliseconds; the trickle would hold it for 40 s.
        assert normal.wait_for(1, timeout=15), "the other account's delivery waited for the slow receiver"
        waited = normal.requests[0][0] - started
        # The slow account had at most its 2 slots at once, whatever its backlog.
        slow_log = _deliveries(lab_server, slow_key, slow_tasks[0])
    assert waited < 15
    attempt = slow_log[0]["attempts"][0]
    # The 200 came at once, so the attempt counts; its body's trickle was cut at the deadline.
    assert attempt["status_code"] == 200
    assert attempt["duration_ms"] < 3000 + 2000


def test_callbacks_to_embedded_private_ipv4_forms_and_odd_ports_are_refused(live_server: LiveServer) -> None:
    _, key = live_server.new_account()
    refused = [
        "http://[64:ff9b::7f00:1]/hook",  # NAT64 of 127.0.0.1
        "http://[64:ff9b::a9fe:a9fe]/latest",  # NAT64 of 169.254.169.254 (cloud metadata)
        "http://[64:ff9b:1::a00:1]/hook",  # local-use NAT64
        "http://[2002:a00:1::1]/hook",  # 6to4 of 10.0.0.1
        "http://[::127.0.0.1]/hook",  # IPv4-compatible
        "http://[::ffff:0:a00:1]/hook",  # IPv4-translated
        "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/hook",  # Teredo of 127.0.0.1
        "http://[fec0::1]/hook",  # site-local
        "https://example.com:8080/hook",  # a port the operator did not allow
        "http://example.com:25/hook",
    ]
    for url in refused:
        response = _create(live_server, key, url)
        assert response.status_code == 422, url
        assert response.json()["error"]["details"][0]["field"] == "callback_url", url
    assert _create(live_server, key, "https://[64:ff9b::808:808]/hook").status_code == 201  # 8.8.8.8


def test_the_delivery_log_does_not_tell_a_private_address_from_a_failed_connection(tmp_path: Path) -> None:
    host = socket.gethostname()
    if not any(str(info[4][0]).startswith("127.") for info in socket.getaddrinfo(host, 80)):
        pytest.skip("this machine's hostname does not resolve to loopback")
    with started_server(tmp_path, CRACKER_WEBHOOK_POLL_S="0.05") as server:
        _, key = server.new_account()
        private = _create(server, key, f"http://{host}/hook").json()["task_id"]
        unresolvable = _create(server, key, "http://no-such-host.invalid/hook").json()["task_id"]
        private_attempt = _deliveries(server, key, private)[0]["attempts"][0]
        unresolvable_attempt = _deliveries(server, key, unresolvable)[0]["attempts"][0]
    assert private_attempt["status_code"] is None and unresolvable_attempt["status_code"] is None
    assert private_attempt["error"] == unresolvable_attempt["error"] == "connection failed"
