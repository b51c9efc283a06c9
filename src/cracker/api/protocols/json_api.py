"""The JSON protocol of Anti-Captcha, CapSolver, CapMonster Cloud and 2captcha's API v2.

``POST /createTask``, ``/getTaskResult``, ``/getBalance`` and the report methods, with the key as
``clientKey`` in the JSON body. Every answer is HTTP 200, as the vendors answer: ``{"errorId": 0, ...}``
or ``{"errorId": 1, "errorCode": "ERROR_...", "errorDescription": ...}``. Task ids are the tasks'
numbers (integers, as these clients parse them); see docs/protocols.md.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from cracker.api.deps import authenticate_key
from cracker.api.envelope import JSONBytes
from cracker.api.protocols.common import ERROR_IDS, describe, vendor_code, vendor_solution
from cracker.api.protocols.tasks import our_task
from cracker.api.state import api_state
from cracker.domain.accounts import ApiKeyRecord, Scope
from cracker.domain.errors import CrackerError, FieldError, ValidationFailed
from cracker.domain.money import UNITS_PER_USD, format_usd
from cracker.domain.tasks import TaskStatus
from cracker.runtime import Runtime

Body = dict[str, Any]
Handler = Callable[[Request, ApiKeyRecord, Body], Awaitable[Body]]


def _error(code: str, description: str) -> Body:
    return {"errorId": ERROR_IDS.get(code, 1), "errorCode": code, "errorDescription": description}


async def _body(request: Request) -> Body:
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        body = None
    if not isinstance(body, dict):
        raise ValidationFailed([FieldError("body", "json_invalid", "The body must be a JSON object")])
    return body


def _endpoint(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            body = await _body(request)
            key = body.get("clientKey")
            record = await authenticate_key(
                request, key if isinstance(key, str) else None, Scope.CLIENT, missing="clientKey missing"
            )
            answer = await handler(request, record, body)
        except CrackerError as exc:
            answer = _error(vendor_code(exc), describe(exc))
        return JSONBytes(answer)

    return endpoint


def _runtime(request: Request) -> Runtime:
    return api_state(request).runtime


async def task_id_of(runtime: Runtime, account_id: str, raw: Any) -> str:
    """Our task id for a client's ``taskId``: the task's number (an integer, or its digits as text)."""
    if isinstance(raw, str) and raw.isdigit():
        raw = int(raw)
    if not isinstance(raw, int) or isinstance(raw, bool):
        raise ValidationFailed([FieldError("taskId", "int_type", "taskId must be the integer createTask answered")])
    return await runtime.tasks.id_of_number(account_id, raw)


async def create_task(request: Request, key: ApiKeyRecord, body: Body) -> Body:
    if not isinstance(body.get("task"), dict):
        return _error("ERROR_TASK_ABSENT", "The request has no task object")
    task_type, params = our_task(body["task"])
    runtime = _runtime(request)
    created = await runtime.tasks.create(key.account_id, task_type, params)
    number = await runtime.tasks.number_of(created.task.id)
    # CapSolver's client reads status (idle: queued) from the create's answer too.
    return {"errorId": 0, "taskId": number, "status": "idle"}


async def get_task_result(request: Request, key: ApiKeyRecord, body: Body) -> Body:
    runtime = _runtime(request)
    task = await runtime.tasks.get(key.account_id, await task_id_of(runtime, key.account_id, body.get("taskId")))
    if task.status is TaskStatus.REJECTED:
        return _error("ERROR_CAPTCHA_UNSOLVABLE", f"{task.error_code}: {task.error_message or ''}".rstrip(": "))
    if task.status is not TaskStatus.COMPLETED or task.solution is None:
        return {"errorId": 0, "status": "processing"}
    return {
        "errorId": 0, "status": "ready", "solution": vendor_solution(task.type, task.solution),
        "cost": format_usd(task.cost or 0), "createTime": int(task.created_at),
        "endTime": int(task.completed_at or task.created_at), "solveCount": 1,
    }


async def get_balance(request: Request, key: ApiKeyRecord, body: Body) -> Body:
    balance = await _runtime(request).accounts.balance(key.account_id)
    return {"errorId": 0, "balance": balance.available / UNITS_PER_USD}


def _report(correct: bool) -> Handler:
    async def report(request: Request, key: ApiKeyRecord, body: Body) -> Body:
        runtime = _runtime(request)
        task_id = await task_id_of(runtime, key.account_id, body.get("taskId"))
        await runtime.reports.report(key.account_id, task_id, correct=correct, expected=None)
        return {"errorId": 0, "status": "success"}

    return report


#: Method path -> handler. The report methods of every vendor name the same thing.
METHODS: dict[str, Handler] = {
    "/createTask": create_task,
    "/getTaskResult": get_task_result,
    "/getBalance": get_balance,
    "/reportIncorrectImageCaptcha": _report(correct=False),
    "/reportIncorrectRecaptcha": _report(correct=False),
    "/reportIncorrectHcaptcha": _report(correct=False),
    "/reportIncorrect": _report(correct=False),
    "/reportCorrectRecaptcha": _report(correct=True),
    "/reportCorrect": _report(correct=True),
}


def router(prefix: str = "") -> APIRouter:
    """The methods at ``prefix`` (the root when empty)."""
    out = APIRouter(prefix=prefix, tags=["vendor protocols"])
    for path, handler in METHODS.items():
        out.add_api_route(path, _endpoint(handler), methods=["POST"], include_in_schema=False)
    return out
