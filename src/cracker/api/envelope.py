"""The JSON the API answers with: the task envelope and the error envelope."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from starlette.requests import HTTPConnection
from starlette.responses import Response
from starlette.types import Send

from cracker.api.state import api_state
from cracker.domain.catalogue import spec_for
from cracker.domain.envelope import doc_url as domain_doc_url
from cracker.domain.envelope import task_envelope as domain_task_envelope
from cracker.domain.errors import CrackerError, FieldError
from cracker.domain.tasks import Task, TaskView


class JSONBytes(Response):
    """A JSON response serialised with orjson (several times faster than the stdlib on the hot path)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


async def send_json(
    send: Send, status: int, content: Any, headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    """The two ASGI messages a JSONBytes response sends, without building one: the fast paths'
    answer (its header list and its call cost about as much as the rest of a poll's envelope)."""
    body = orjson.dumps(content)
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-length", b"%d" % len(body)), (b"content-type", b"application/json"), *headers,
    ]})
    await send({"type": "http.response.body", "body": body})


def docs_base(conn: HTTPConnection) -> str:
    """Where this server's error pages are: the configured base, else this server as the request
    reached it (Starlette's ``base_url``, read straight from the scope: building URL objects cost
    more than the rest of a poll's envelope)."""
    configured = api_state(conn).docs_base_url
    if configured:
        return configured
    scope = conn.scope
    host = next((value for name, value in scope["headers"] if name == b"host"), None)
    if host is not None:
        netloc = host.decode("latin-1")
    else:
        server = scope.get("server")
        if server is None:
            return str(conn.base_url).rstrip("/")
        address, port = server
        default = {"http": 80, "https": 443, "ws": 80, "wss": 443}.get(scope["scheme"])
        netloc = address if port == default else f"{address}:{port}"
    return f"{scope['scheme']}://{netloc}{scope.get('root_path', '')}".rstrip("/")


def doc_url(conn: HTTPConnection, code: str) -> str:
    return domain_doc_url(docs_base(conn), code)


def request_id(conn: HTTPConnection) -> str:
    return str(conn.scope.get("state", {}).get("request_id", ""))


def task_envelope(conn: HTTPConnection, task: Task | TaskView) -> dict[str, Any]:
    # Only an error names a page of the docs: the base is not worked out for the rest.
    return domain_task_envelope(task, docs_base(conn) if task.error_code is not None else "")


#: ``details`` lists at most this many fields, each text at most _MAX_DETAIL_CHARS: a body of
#: thousands of unknown keys (or one huge key) must not draw an answer larger than itself.
MAX_DETAILS = 50
_MAX_DETAIL_CHARS = 256


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_DETAIL_CHARS else text[: _MAX_DETAIL_CHARS - 3] + "..."


def error_body(
    conn: HTTPConnection, code: str, message: str, details: Sequence[FieldError] = ()
) -> dict[str, Any]:
    spec = spec_for(code)
    if len(details) > MAX_DETAILS:
        message = f"{message}; the first {MAX_DETAILS} are listed, {len(details) - MAX_DETAILS} more left out"
        details = details[:MAX_DETAILS]
    body: dict[str, Any] = {
        "code": code,
        "message": message,
        "retryable": spec.retryable,
        "doc_url": doc_url(conn, code),
        "request_id": request_id(conn),
        # details is an array only on validation_failed, null elsewhere (as on the published page).
        "details": [{"field": _clip(d.field), "code": _clip(d.code), "message": _clip(d.message)} for d in details]
        if code == "validation_failed"
        else None,
    }
    return {"error": body}


def error_response(
    conn: HTTPConnection,
    code: str,
    message: str,
    details: Sequence[FieldError] = (),
    headers: dict[str, str] | None = None,
) -> JSONBytes:
    status = spec_for(code).http_status or 500
    if conn.url.path.startswith(LEGACY_V1_PREFIX):
        return JSONBytes(legacy_error_body(conn, code, message, details), status_code=status, headers=headers)
    return JSONBytes(error_body(conn, code, message, details), status_code=status, headers=headers)


LEGACY_V1_PREFIX = "/api/v1/"


def legacy_error_body(
    conn: HTTPConnection, code: str, message: str, details: Sequence[FieldError] = ()
) -> dict[str, Any]:
    """v1 clients read ``message`` (and compare "Unauthorized" exactly); the v2 error rides along."""
    if code in ("missing_api_key", "invalid_api_key", "insufficient_scope"):
        return {"message": "Unauthorized"}
    return {"message": message, **error_body(conn, code, message, details)}


def cracker_error_response(conn: HTTPConnection, exc: CrackerError) -> JSONBytes:
    return error_response(conn, exc.code, exc.message, exc.details, exc.headers or None)
