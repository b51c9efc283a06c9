"""The poll fast path: ``GET /v2/tasks/{task_id}`` (and ``?wait=S``), served ahead of FastAPI.

Clients poll this route far more often than they call any other, and FastAPI's per-request
dependency solving and validation cost more than the whole read (measured in
``bench/api_bench.py``). So ``RequestContextMiddleware`` offers every request to
``serve_poll`` first: a poll is answered here by a bare Starlette endpoint, after the same
authentication and rate limit as every route, and with the same error mapping
(``errors.error_response_for``); anything else goes on to FastAPI. The FastAPI route of the same
path (``routes/tasks.py``) describes it in ``/openapi.json`` and answers the same by calling
``read_task``.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from cracker.api.deps import authenticate
from cracker.api.envelope import JSONBytes, send_json, task_envelope
from cracker.api.errors import error_response_for
from cracker.api.params import parse_task_id, parse_wait
from cracker.api.state import api_state
from cracker.domain.accounts import Scope as KeyScope


async def read_task(request: Request) -> Response:
    """A client's task, as it is now, or once it ends within ``?wait=S`` seconds."""
    return JSONBytes(await poll_envelope(request))


async def poll_envelope(request: Request) -> dict[str, Any]:
    """``read_task``'s envelope."""
    key = await authenticate(request, KeyScope.CLIENT)
    task_id = parse_task_id(request.path_params["task_id"])
    # Most polls carry no query string: skip parsing one (QueryParams costs microseconds a poll).
    wait_s = parse_wait(request.query_params.get("wait")) if request.scope.get("query_string") else None
    shared = api_state(request)
    runtime = shared.runtime
    if wait_s:
        with shared.long_polls.hold(key.account_id):
            task = await runtime.tasks.wait(key.account_id, task_id, wait_s)
    else:
        task = await runtime.tasks.get(key.account_id, task_id)
    return task_envelope(request, task)


_POLL = Route("/v2/tasks/{task_id}", read_task, methods=["GET"], include_in_schema=False)
_PREFIX = "/v2/tasks/"


async def serve_poll(scope: Scope, receive: Receive, send: Send) -> bool:
    """Answer the request if it is a poll and return True; else return False, having sent nothing."""
    if scope["method"] != "GET":
        return False
    # The route's template by hand (Starlette's regex match and its child scope cost more):
    # /v2/tasks/{task_id}, the id one non-empty path segment.
    path: str = scope["path"]
    if not path.startswith(_PREFIX) or len(path) == len(_PREFIX) or "/" in path[len(_PREFIX):]:
        return False
    scope["endpoint"] = read_task
    scope["path_params"] = {"task_id": path[len(_PREFIX):]}
    scope["route"] = _POLL  # its template names the access line's route, as FastAPI's router does
    request = Request(scope, receive)
    try:
        envelope = await poll_envelope(request)
    except Exception as exc:
        await error_response_for(request, exc)(scope, receive, send)
        return True
    await send_json(send, 200, envelope)
    return True
