"""No secret reaches the log of a real server: the access log and the service's own lines."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from tests.conftest import TURNSTILE_PASS, started_server

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
