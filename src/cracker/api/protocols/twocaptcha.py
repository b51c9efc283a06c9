"""2captcha's ``in.php`` / ``res.php``: form or multipart submissions, plain ``OK|id`` or ``json=1`` answers.

A submission is turned into the JSON protocol's task object (``protocols.tasks``), so both protocols
share one mapping to our task types. Answers are HTTP 200 with ``OK|...``, ``CAPCHA_NOT_READY`` or an
``ERROR_...`` code, or with ``json=1`` ``{"status": 1|0, "request": ...}``, as 2captcha answers.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request
from starlette.datastructures import UploadFile
from starlette.responses import PlainTextResponse, Response

from cracker.api.deps import authenticate_key
from cracker.api.envelope import JSONBytes
from cracker.api.protocols.common import describe, vendor_code
from cracker.api.protocols.json_api import task_id_of
from cracker.api.protocols.tasks import our_task
from cracker.api.state import api_state
from cracker.domain.accounts import ApiKeyRecord, Scope
from cracker.domain.errors import CrackerError, FieldError, ValidationFailed
from cracker.domain.money import format_usd
from cracker.domain.task_types import MAX_IMAGE_BYTES
from cracker.domain.tasks import TaskStatus
from cracker.runtime import Runtime

#: The JSON protocol's codes that in.php names otherwise.
_IN_CODES = {"ERROR_INCORRECT_SESSION_DATA": "ERROR_BAD_PARAMETERS", "ERROR_TASK_NOT_SUPPORTED": "ERROR_BAD_PARAMETERS",
             "ERROR_NO_SUCH_CAPCHA_ID": "ERROR_WRONG_CAPTCHA_ID"}


class _Answer(Exception):
    """An answer other than OK: an error code, or CAPCHA_NOT_READY."""

    def __init__(self, code: str, text: str = "") -> None:
        super().__init__(code)
        self.code, self.text = code, text


def _json(fields: Mapping[str, Any]) -> bool:
    return str(fields.get("json", "0")) == "1"


def _ok(fields: Mapping[str, Any], value: str, *, bare: bool = False) -> Response:
    """Success: ``OK|value`` (or the bare value: balances, report receipts), or ``{"status": 1}``."""
    if _json(fields):
        return JSONBytes({"status": 1, "request": value})
    return PlainTextResponse(value if bare else f"OK|{value}")


def _fail(fields: Mapping[str, Any], code: str, text: str = "") -> Response:
    if _json(fields):
        return JSONBytes({"status": 0, "request": code, **({"error_text": text} if text else {})})
    return PlainTextResponse(code)


async def _fields(request: Request) -> dict[str, Any]:
    fields: dict[str, Any] = dict(request.query_params)
    if request.method == "POST":
        # Uploads up to the image limit; a part above it is refused by the parser (400).
        form = await request.form(max_part_size=2 * MAX_IMAGE_BYTES)
        fields.update(form)
    return fields


def _int(fields: Mapping[str, Any], name: str) -> int | None:
    raw = fields.get(name)
    if raw in (None, ""):
        return None
    try:
        return int(str(raw))
    except ValueError:
        raise ValidationFailed([FieldError(name, "int_parsing", f"{name} must be an integer")]) from None


async def _image_b64(fields: Mapping[str, Any]) -> str | None:
    upload = fields.get("file")
    if isinstance(upload, UploadFile):
        return base64.b64encode(await upload.read(MAX_IMAGE_BYTES + 1)).decode()
    body = fields.get("body")
    # Form encoding turns + into spaces when a client forgets to escape base64.
    return body.replace(" ", "+").strip() if isinstance(body, str) else None


async def vendor_task(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON protocol's task object for an in.php submission."""
    method = str(fields.get("method", ""))
    url, site_key = fields.get("pageurl"), fields.get("sitekey")
    if method in ("post", "base64"):
        return {"type": "ImageToTextTask", "body": await _image_b64(fields), "case": _int(fields, "regsense") == 1,
                "numeric": _int(fields, "numeric") or 0, "minLength": _int(fields, "min_len"),
                "maxLength": _int(fields, "max_len"), "phrase": _int(fields, "phrase") == 1,
                "math": _int(fields, "calc") == 1}
    if method == "turnstile":
        return {"type": "TurnstileTaskProxyless", "websiteURL": url, "websiteKey": site_key,
                "action": fields.get("action"), "data": fields.get("data")}
    if method == "userrecaptcha":
        version = "V3" if str(fields.get("version", "")).lower() == "v3" else "V2"
        proxy = fields.get("proxy")
        kind = str(fields.get("proxytype") or "http").lower()
        return {"type": f"Recaptcha{version}TaskProxyless", "websiteURL": url, "websiteKey": fields.get("googlekey"),
                "pageAction": fields.get("action"), "isEnterprise": _int(fields, "enterprise") == 1,
                "proxy": f"{kind}://{proxy}" if proxy else None}
    if method == "hcaptcha":
        return {"type": "HCaptchaTaskProxyless", "websiteURL": url, "websiteKey": site_key, "data": fields.get("data")}
    if method == "altcha":
        return {"type": "AltchaTask", "websiteURL": url, "challengeJSON": fields.get("challenge_json"),
                "challengeURL": fields.get("challenge_url")}
    raise _Answer("ERROR_BAD_PARAMETERS", f"method {method[:64]!r} is not served here (docs/protocols.md)")


async def _key(request: Request, fields: Mapping[str, Any]) -> ApiKeyRecord:
    key = fields.get("key")
    return await authenticate_key(request, key if isinstance(key, str) else None, Scope.CLIENT, missing="key missing")


def _runtime(request: Request) -> Runtime:
    return api_state(request).runtime


async def in_php(request: Request) -> Response:
    fields: dict[str, Any] = {}
    try:
        fields = await _fields(request)
        key = await _key(request, fields)
        task_type, params = our_task(await vendor_task(fields))
        runtime = _runtime(request)
        created = await runtime.tasks.create(key.account_id, task_type, params)
        return _ok(fields, str(await runtime.tasks.number_of(created.task.id)))
    except CrackerError as exc:
        code = vendor_code(exc)
        return _fail(fields, _IN_CODES.get(code, code), describe(exc))
    except _Answer as answer:
        return _fail(fields, answer.code, answer.text)


async def _get(request: Request, key: ApiKeyRecord, fields: Mapping[str, Any]) -> str:
    runtime = _runtime(request)
    task = await runtime.tasks.get(key.account_id, await task_id_of(runtime, key.account_id, fields.get("id")))
    if task.status is TaskStatus.REJECTED:
        raise _Answer("ERROR_CAPTCHA_UNSOLVABLE", f"{task.error_code}: {task.error_message or ''}")
    if task.status is not TaskStatus.COMPLETED or task.solution is None:
        raise _Answer("CAPCHA_NOT_READY")
    return str(task.solution.get("token", ""))


async def res_php(request: Request) -> Response:
    fields: dict[str, Any] = {}
    try:
        fields = await _fields(request)
        key = await _key(request, fields)
        action = str(fields.get("action", ""))
        runtime = _runtime(request)
        if action == "get":
            return _ok(fields, await _get(request, key, fields))
        if action == "getbalance":
            balance = await runtime.accounts.balance(key.account_id)
            # A bare number, not OK|: the published clients parse it with float().
            return _ok(fields, format_usd(balance.available), bare=True)
        if action in ("reportbad", "reportgood"):
            task_id = await task_id_of(runtime, key.account_id, fields.get("id"))
            await runtime.reports.report(key.account_id, task_id, correct=action == "reportgood", expected=None)
            return _ok(fields, "OK_REPORT_RECORDED", bare=True)
        raise _Answer("ERROR_BAD_PARAMETERS", f"action {action[:64]!r} is not served here (docs/protocols.md)")
    except CrackerError as exc:
        code = vendor_code(exc)
        code = {"ERROR_ALREADY_REPORTED": "ERROR_DUPLICATE_REPORT"}.get(code, _IN_CODES.get(code, code))
        return _fail(fields, code, describe(exc))
    except _Answer as answer:
        return _fail(fields, answer.code, answer.text)


def router(prefix: str = "") -> APIRouter:
    out = APIRouter(prefix=prefix, tags=["vendor protocols"])
    out.add_api_route("/in.php", in_php, methods=["GET", "POST"], include_in_schema=False)
    out.add_api_route("/res.php", res_php, methods=["GET", "POST"], include_in_schema=False)
    return out
