"""The sandbox task the HTTP benchmarks send (Turnstile's always-pass test key, no solving work):
its body, wrk's script that posts it, and a completed one to poll."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx

TURNSTILE = {"url": "https://example.com", "site_key": "1x00000000000000000000AA"}


def completed_task(port: int, key: str) -> dict[str, object]:
    """The envelope of a task created on the server at ``port`` and polled until completed."""
    headers = {"x-solvium-auth": key}
    task = httpx.post(f"http://127.0.0.1:{port}/v2/tasks/turnstile", headers=headers, json=TURNSTILE).json()
    envelope: dict[str, object] = task
    for _ in range(100):
        envelope = httpx.get(f"http://127.0.0.1:{port}/v2/tasks/{task['task_id']}", headers=headers).json()
        if envelope["status"] == "completed":
            break
        time.sleep(0.05)
    return envelope


def post_script(workdir: Path) -> Path:
    """wrk's Lua script that POSTs ``TURNSTILE`` as JSON (to the URL wrk is given)."""
    script = workdir / "create.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = '{json.dumps(TURNSTILE)}'\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    return script
