"""The JSON the API answers with: the task envelope and the error envelope."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from starlette.requests import HTTPConnection
from starlette.responses import Response

from cracker.domain.catalogue import spec_for
from cracker.domain.clock import rfc3339
from cracker.domain.errors import CrackerError, FieldError
from cracker.domain.money import format_usd
from cracker.domain.tasks import Task, TaskView


class JSONBytes(Response):
    """A JSON response serialised with orjson (several times faster than the stdlib on the hot path)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def doc_url(conn: HTTPConnection, code: str) -> str:
    base: str = conn.app.state.docs_base_url or str(conn.base_url).rstrip("/")
    return f"{base}/errors/{code.replace('_', '-')}"


def request_id(conn: HTTPConnection) -> str:
    return str(conn.scope.get("state", {}).get("request_id", ""))


def task_envelope(conn: HTTPConnection, task: Task | TaskView) -> dict[str, Any]:
    error = None
    if task.error_code is not None:
        spec = spec_for(task.error_code)
        error = {
            "code": task.error_code,
            "message": task.error_message or spec.message,
            "retryable": spec.retryable,
            "doc_url": doc_url(conn, task.error_code),
        }
    return {
        "task_id": task.id,
        "type": task.type,
        "status": task.status.value,
        "solution": task.solution,
        "error": error,
        "cost": format_usd(task.cost) if task.cost is not None else None,
        "created_at": rfc3339(task.created_at),
        "started_at": rfc3339(task.started_at),
        "completed_at": rfc3339(task.completed_at),
    }


def error_body(
    conn: HTTPConnection, code: str, message: str, details: Sequence[FieldError] = ()
) -> dict[str, Any]:
    spec = spec_for(code)
    body: dict[str, Any] = {
        "code": code,
        "message": message,
        "retryable": spec.retryable,
        "doc_url": doc_url(conn, code),
        "request_id": request_id(conn),
        # details is an array only on validation_failed, null elsewhere (as on the published page).
        "details": [{"field": d.field, "code": d.code, "message": d.message} for d in details]
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
    return JSONBytes(error_body(conn, code, message, details), status_code=status, headers=headers)


def cracker_error_response(conn: HTTPConnection, exc: CrackerError) -> JSONBytes:
    return error_response(conn, exc.code, exc.message, exc.details, exc.headers or None)
