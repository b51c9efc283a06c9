"""The log of a real server (and of a worker): one JSON object per line, an access line per request
with its request id, account, route template, status and duration, and no secret ever (keys,
proxy passwords, webhook secrets, image bytes)."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import uuid_utils

from tests.conftest import TURNSTILE_PASS, started_server
from tests.timing import within

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
    log_lines(server.log_path)  # every line is JSON
    text = server.log_path.read_text()
    assert v1.status_code in (201, 422), v1.text
    assert "/api/v1/task/recaptcha-v3" in text and "/v2/balance" in text  # the access log is on
    assert "webhook" in text  # and so is the dispatcher's
    for secret in (PROXY_PASSWORD, HOOK_PASSWORD, key, key[3:], bogus_key, bogus_key[3:]):
        assert secret not in text, secret


def log_lines(path: Path) -> list[dict[str, Any]]:
    """Every line of a process's output, each parsed as one JSON object (fails on any other line)."""
    lines = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        parsed = json.loads(line)  # a line that is not JSON fails the test here
        assert isinstance(parsed, dict), f"line {number}: {line}"
        assert {"timestamp", "level", "logger", "message"} <= parsed.keys(), f"line {number}: {line}"
        lines.append(parsed)
    return lines


def access_line(lines: list[dict[str, Any]], request_id: str) -> dict[str, Any]:
    found = [line for line in lines if line["logger"] == "cracker.access" and line.get("request_id") == request_id]
    assert len(found) == 1, (request_id, found)
    return found[0]


def test_server_log_is_json_with_one_access_line_per_request(tmp_path: Path) -> None:
    """Every line of a real server's output is a JSON object; each request has one access line with
    its request id (the client's own UUIDv7 when sent), the account, the route's template, status
    and duration, on FastAPI's routes, the poll fast path and errors alike; an image's bytes and the
    key never appear."""
    image_b64 = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"never-logged-image-bytes" * 20).decode()
    with started_server(tmp_path, log_level="info") as server:
        account_id, key = server.new_account()
        auth = {"x-solvium-auth": key}
        ids = {name: str(uuid_utils.uuid7()) for name in ("create", "poll", "missing", "invalid", "image")}
        with httpx.Client(base_url=server.base_url, headers=auth) as client:
            body = {"url": "https://example.com", "site_key": TURNSTILE_PASS}
            created = client.post("/v2/tasks/turnstile", json=body, headers={"x-request-id": ids["create"]})
            assert created.status_code == 201, created.text
            assert created.headers["x-request-id"] == ids["create"]
            task_id = created.json()["task_id"]
            polled = client.get(f"/v2/tasks/{task_id}", headers={"x-request-id": ids["poll"]})
            missing = client.get(f"/v2/tasks/{uuid_utils.uuid7()}", headers={"x-request-id": ids["missing"]})
            invalid = client.post("/v2/tasks/turnstile", json={"url": 5}, headers={"x-request-id": ids["invalid"]})
            image = client.post("/v2/tasks/image-to-text", json={"image_b64": image_b64},
                                headers={"x-request-id": ids["image"]})
            # Not a UUIDv7: ignored, the server assigns its own.
            foreign = client.get("/v2/balance", headers={"x-request-id": "evil\tid"})
            no_route = client.get("/v2/no-such-route")
        assert (polled.status_code, missing.status_code, invalid.status_code) == (200, 404, 422)
        assert image.status_code in (201, 422), image.text
        assert foreign.headers["x-request-id"] != "evil\tid"
        time.sleep(0.3)
    lines = log_lines(server.log_path)
    for name, route, method, status in (
        ("create", "/v2/tasks/turnstile", "POST", 201),
        ("poll", "/v2/tasks/{task_id}", "GET", 200),
        ("missing", "/v2/tasks/{task_id}", "GET", 404),
        ("invalid", "/v2/tasks/turnstile", "POST", 422),
        ("image", "/v2/tasks/image-to-text", "POST", image.status_code),
    ):
        line = access_line(lines, ids[name])
        assert (line["route"], line["method"], line["status"], line["account_id"]) == (route, method, status,
                                                                                      account_id), line
        assert isinstance(line["duration_ms"], float) and 0 <= line["duration_ms"] < 60_000, line
        assert line["level"] == "info" and line["timestamp"].endswith("Z"), line
    foreign_line = access_line(lines, foreign.headers["x-request-id"])
    assert foreign_line["route"] == "/v2/balance" and foreign_line["account_id"] == account_id
    unmatched = access_line(lines, no_route.headers["x-request-id"])
    assert (unmatched["route"], unmatched["path"], unmatched["status"]) == (None, "/v2/no-such-route", 404)
    assert unmatched["account_id"] == account_id  # its key was valid, though no route matched
    assert any(line["logger"].startswith("uvicorn") for line in lines)  # uvicorn's own lines are JSON too
    text = server.log_path.read_text()
    for secret in (key, key[3:], image_b64, image_b64[:40]):
        assert secret not in text


def test_worker_log_is_json(tmp_path: Path) -> None:
    """``cracker worker``'s lines are JSON objects too (start and stop), and CRACKER_LOG_FORMAT=text
    gives plain text to a person at a terminal."""
    env = {**os.environ, "CRACKER_DATABASE_URL": f"sqlite:///{tmp_path / 'w.db'}", "CRACKER_CPU_WORKERS": "1"}
    assert subprocess.run([sys.executable, "-m", "cracker", "migrate"], env=env, check=False,
                          capture_output=True).returncode == 0
    outputs = []
    for log_format in ("json", "text"):
        log_path = tmp_path / f"worker-{log_format}.log"
        with log_path.open("wb") as out:
            worker = subprocess.Popen(
                [sys.executable, "-m", "cracker", "worker", "--name", "logged"],
                env={**env, "CRACKER_LOG_FORMAT": log_format}, stdout=out, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + within(30)
        while "serving" not in log_path.read_text() and time.monotonic() < deadline and worker.poll() is None:
            time.sleep(0.1)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=within(30)) == 0, log_path.read_text()
        outputs.append(log_path)
    lines = log_lines(outputs[0])
    messages = [line["message"] for line in lines if line["logger"] == "cracker.worker"]
    assert any("serving" in message for message in messages) and any("stopping" in m for m in messages), lines
    text = outputs[1].read_text()
    assert " INFO cracker.worker: worker " in text and not text.lstrip().startswith("{"), text
