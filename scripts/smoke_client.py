"""A new user's first requests against a running Cracker, checked: used by scripts/check_install.sh.

    python scripts/smoke_client.py --url http://127.0.0.1:8000 --key ck_... [--types pow-sha256,image-to-text]

Waits for ``/v2/health``, creates each task over plain HTTP (standard library only, so that nothing
but the server under test comes from the package), long-polls it to its end and requires
``completed``; the ``pow-sha256`` answer is recomputed here, the ``image-to-text`` image is drawn
with Pillow (a dependency of the service: run this with the installed environment's python).
Exits 1 with the reason on the first failure.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import sys
import time
import urllib.error
import urllib.request
from typing import Any

TIMEOUT_S = 60.0


def call(url: str, *, key: str | None = None, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="GET" if body is None else "POST")  # noqa: S310
    request.add_header("content-type", "application/json")
    if key:
        request.add_header("x-solvium-auth", key)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def wait_for_health(base: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            status, body = call(f"{base}/v2/health")
            if status == 200:
                print(f"health: {body}")
                return
            last = f"{status} {body}"
        except (OSError, ValueError) as exc:
            last = f"{type(exc).__name__}: {exc}"
        time.sleep(0.5)
    fail(f"/v2/health did not answer 200 within {seconds:.0f} s (last: {last})")


def fail(reason: str) -> None:
    print(f"smoke: FAILED: {reason}", file=sys.stderr)
    raise SystemExit(1)


def captcha_image() -> tuple[str, str]:
    """A clear text image and its text (a plain install must read it: the model ships in the wheel)."""
    from PIL import Image, ImageDraw, ImageFont

    text = "K7P3Q"
    image = Image.new("RGB", (160, 50), "white")
    ImageDraw.Draw(image).text((12, 6), text, fill="black", font=ImageFont.load_default(size=32))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode(), text


def solve(base: str, key: str, task_type: str, body: dict[str, Any]) -> dict[str, Any]:
    status, created = call(f"{base}/v2/tasks/{task_type}", key=key, body=body)
    if status not in (200, 201, 202):
        fail(f"create {task_type}: {status} {created}")
    task_id = created["task_id"]
    deadline = time.monotonic() + TIMEOUT_S
    envelope = created
    while envelope.get("status") in ("pending", "running") and time.monotonic() < deadline:
        status, envelope = call(f"{base}/v2/tasks/{task_id}?wait=30", key=key)
        if status != 200:
            fail(f"poll {task_type} {task_id}: {status} {envelope}")
    if envelope.get("status") != "completed":
        fail(f"{task_type} {task_id} ended {envelope.get('status')}: {envelope}")
    return envelope


def check_pow(base: str, key: str) -> None:
    data, difficulty = "smoke-test", 4
    solution = solve(base, key, "pow-sha256", {"data": data, "difficulty": difficulty})["solution"]
    digest = hashlib.sha256(f"{data}{solution['nonce']}".encode()).hexdigest()
    if digest != solution["hash"] or not digest.startswith("0" * difficulty):
        fail(f"pow-sha256 answer does not verify: nonce {solution['nonce']} gives {digest}")
    print(f"pow-sha256: completed, nonce {solution['nonce']} verified ({digest[:12]}...)")


def check_ocr(base: str, key: str) -> None:
    image_b64, text = captcha_image()
    solution = solve(base, key, "image-to-text", {"image_b64": image_b64})["solution"]
    if not solution.get("token"):
        fail(f"image-to-text completed without a reading: {solution}")
    print(f"image-to-text: completed, read {solution['token']!r} (drawn {text!r}), confidence {solution['confidence']}")


CHECKS = {"pow-sha256": check_pow, "image-to-text": check_ocr}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--key", default="", help="an account's API key (not needed with --types '')")
    parser.add_argument("--types", default="pow-sha256,image-to-text", help="'' only waits for /v2/health")
    parser.add_argument("--health-timeout", type=float, default=60.0)
    args = parser.parse_args()
    base = args.url.rstrip("/")
    wait_for_health(base, args.health_timeout)
    for task_type in filter(None, args.types.split(",")):
        CHECKS[task_type](base, args.key)
    print("smoke: OK")


if __name__ == "__main__":
    main()
