"""No secret reaches the log of a real server: the access log and the service's own lines."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from .conftest import TURNSTILE_PASS, started_server

PROXY_PASSWORD = "Pr0xyPassw0rd"
HOOK_PASSWORD = "H00kPassw0rd"


def test_secrets_never_reach_the_server_log(tmp_path: Path) -> None:
    with started_server(tmp_path, log_level="info", CRACKER_WEBHOOK_POLL_S="0.05") as server:
        _, key = server.new_account()
        bogus_key = "ck_" + "Z" * 43
        with httpx.Client(base_url=server.base_url) as client:
            v1 = client.get("/api/v1/task/recaptcha-v3", headers={"Authorization": f"Bearer {key}"}, params={
                "url": "https://example.com", "sitekey": "site", "action": "login",
                "proxy": f"http://proxyuser:{PROXY_PASSWORD}@proxy.example.com:8080",
            })
            client.get("/api/v1/task/recaptcha-v2", params={
                "url": "https://example.com", "sitekey": "s", "proxy": f"socks5://u:{PROXY_PASSWORD}@p.example:1080",
                "key": key, "api_key": bogus_key,
            })
            client.get("/v2/balance", headers={"x-solvium-auth": bogus_key})
            client.get("/v2/balance", headers={"Authorization": f"Bearer {key}"})
            hooked = client.post("/v2/tasks/turnstile", headers={"x-solvium-auth": key}, json={
                "url": "https://example.com", "site_key": TURNSTILE_PASS,
                "callback_url": f"https://hookuser:{HOOK_PASSWORD}@no-such-host.invalid/hook",
            })
            assert hooked.status_code == 201, hooked.text
            task_id = hooked.json()["task_id"]
            for _ in range(200):  # until the delivery's first attempt is logged
                log = client.get(f"/v2/tasks/{task_id}/deliveries", headers={"x-solvium-auth": key}).json()
                if log["deliveries"] and log["deliveries"][0]["attempts"]:
                    break
                time.sleep(0.05)
        time.sleep(0.3)
    text = server.log_path.read_text()
    assert v1.status_code in (201, 422), v1.text
    assert "/api/v1/task/recaptcha-v3" in text and "/v2/balance" in text  # the access log is on
    assert "webhook" in text  # and so is the dispatcher's
    for secret in (PROXY_PASSWORD, HOOK_PASSWORD, key, key[3:], bogus_key, bogus_key[3:]):
        assert secret not in text, secret


def test_redaction_rules() -> None:
    from cracker.logredact import redact

    assert redact("GET /x?proxy=http%3A%2F%2Fu%3Apw%40h%3A80&a=1") == "GET /x?proxy=***&a=1"
    assert redact("https://user:pw@example.com/hook") == "https://***@example.com/hook"
    assert redact("https://token@example.com/") == "https://***@example.com/"
    assert redact("ref=http%3A%2F%2Fu%3Apw%40h") == "ref=http%3A%2F%2F***%40h"
    assert redact("Authorization: Bearer abc.def") == "Authorization: Bearer ***"
    assert redact("{'x-solvium-auth': 'zzz'}") == "{'x-solvium-auth': '***'}"
    assert redact("key ck_abcdefghijklmnop and whsec_0123456789abcdef") == "key ck_*** and whsec_***"
    assert redact("GET /v2/tasks/01959e02?wait=5 HTTP/1.1") == "GET /v2/tasks/01959e02?wait=5 HTTP/1.1"
