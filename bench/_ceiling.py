"""The ceiling every HTTP benchmark here is measured against, in the same run: a bare Starlette app
on uvicorn, in the same venv and with the same server options as `cracker serve`, answering the
routes the benchmark drives with the very same JSON document (so only the work differs).

    GET  /v2/tasks/{task_id}   -> the envelope
    POST /v2/tasks/{type}      -> the body parsed as JSON, then the envelope with 201
    GET  /v2/health            -> {"status": "ok"}
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

BARE_APP = '''
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

BODY = {body}

async def read(request):
    return JSONResponse(BODY)

async def create(request):
    await request.json()
    return JSONResponse(BODY, status_code=201)

async def health(request):
    return JSONResponse({{"status": "ok"}})

app = Starlette(routes=[
    Route("/v2/health", health),
    Route("/v2/tasks/{{task_id}}", read),
    Route("/v2/tasks/{{name}}", create, methods=["POST"]),
])
'''

#: The options `cracker serve` runs uvicorn with (cli.py), less what only it has.
UVICORN_OPTS = ["--log-level", "warning", "--no-access-log", "--no-server-header"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_up(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited early ({url})")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit(f"server did not start: {url}")


def start_bare(workdir: Path, envelope: dict[str, Any]) -> tuple[subprocess.Popen[bytes], int]:
    """The bare app answering ``envelope``; (process, port), up and answering."""
    (workdir / "bare_app.py").write_text(BARE_APP.format(body=repr(envelope)))
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "bare_app:app", "--port", str(port), *UVICORN_OPTS],
        cwd=workdir, env={**os.environ},
    )
    wait_up(f"http://127.0.0.1:{port}/v2/health", proc)
    return proc, port
