"""The legacy v1 API of the published 1.x clients, served from the same tasks, billing and queue.

Shapes are the observed ones (../shared/spec/legacy-v1.md): creates answer
``{"message": "Task created", "task_id"}``, polls answer ``{"status", "result", "error"}``, unknown
query parameters are ignored, and a missing or bad key is ``401 {"message": "Unauthorized"}``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.responses import Response

from cracker.api.deps import authenticate
from cracker.api.envelope import JSONBytes
from cracker.api.errors import field_errors
from cracker.api.params import parse_task_id
from cracker.api.responses import AUTH, COMMON, errors
from cracker.api.state import api_state
from cracker.domain.accounts import Scope
from cracker.domain.errors import ValidationFailed
from cracker.domain.task_types import TASK_TYPES

router = APIRouter(prefix="/api/v1", tags=["legacy v1"])

#: What a v1 create can answer besides its 200 (the bodies are v1's: /openapi.json says how).
_CREATE_ERRORS = errors(*AUTH, *COMMON, "validation_failed", "offer_not_found", "insufficient_balance",
                        "no_solver_available")

Text = Annotated[str | None, Query(max_length=4096)]
# v2 field -> the v1 parameter a client sent, to name the right field in validation errors.
_V1_NAMES = {"site_key": "sitekey", "challenge_token": "challengeToken", "challenge_body_b64": "body"}


class V1Created(BaseModel):
    message: str = Field(examples=["Task created"])
    task_id: str


class V1Result(BaseModel):
    solution: str | None = None
    error: str | None = None


class V1Status(BaseModel):
    status: str
    result: V1Result | None
    error: str | None


class CfClearanceV1(BaseModel):
    # Old clients send extra keys; they are ignored, as on the v1 service.
    model_config = ConfigDict(extra="ignore")
    url: str
    body: str = Field(description="The challenge page's HTML, standard base64")
    proxy: str


def _present(**fields: Any) -> dict[str, Any]:
    """Drop absent and empty parameters: v1 clients send ``proxy=`` for "no proxy"."""
    return {name: value for name, value in fields.items() if value not in (None, "")}


async def _create(request: Request, task_type: str, fields: dict[str, Any]) -> Response:
    key = await authenticate(request, Scope.CLIENT)
    try:
        params = TASK_TYPES[task_type].model.model_validate(fields).model_dump(mode="json", exclude_unset=True)
    except ValidationError as exc:
        details = [
            type(d)(field=_V1_NAMES.get(d.field, d.field), code=d.code, message=d.message)
            for d in field_errors(exc.errors())
        ]
        raise ValidationFailed(details) from None
    runtime = api_state(request).runtime
    created = await runtime.tasks.create(key.account_id, task_type, params)
    return JSONBytes({"message": "Task created", "task_id": created.task.id})


def _enterprise(value: str | None) -> bool | None:
    return True if (value or "").lower() in ("true", "1", "yes") else None


@router.get("/task/turnstile", response_model=V1Created, summary="v1: create a Turnstile task",
             responses=_CREATE_ERRORS, operation_id="v1_create_turnstile_task")
async def turnstile(request: Request, url: Text = None, sitekey: Text = None, action: Text = None,
                    cdata: Text = None) -> Response:
    return await _create(request, "turnstile", _present(url=url, site_key=sitekey, action=action, cdata=cdata))


@router.get("/task/noname", response_model=V1Created, summary="v1: create an hCaptcha task",
             responses=_CREATE_ERRORS, operation_id="v1_create_noname_task")
async def noname(request: Request, url: Text = None, sitekey: Text = None) -> Response:
    return await _create(request, "hcaptcha", _present(url=url, site_key=sitekey))


def _recaptcha(version: str) -> Any:
    async def create(request: Request, url: Text = None, sitekey: Text = None, action: Text = None,
                     proxy: Text = None, enterprise: Text = None) -> Response:
        return await _create(request, f"recaptcha-{version}", _present(
            url=url, site_key=sitekey, action=action, proxy=proxy, enterprise=_enterprise(enterprise)
        ))

    return create


for _version in ("v3", "v2"):
    router.add_api_route(
        f"/task/recaptcha-{_version}", _recaptcha(_version), methods=["GET"], response_model=V1Created,
        summary=f"v1: create a reCAPTCHA {_version} task", responses=_CREATE_ERRORS,
        operation_id=f"v1_create_recaptcha_{_version}_task",
    )


@router.get("/task/", response_model=V1Created, summary="v1: create a reCAPTCHA v3 Enterprise task",
             responses=_CREATE_ERRORS, operation_id="v1_create_recaptcha_v3_enterprise_task")
async def recaptcha_v3_enterprise(request: Request, url: Text = None, sitekey: Text = None, action: Text = None,
                                  enterprise: Text = None, proxy: Text = None) -> Response:
    return await _create(request, "recaptcha-v3", _present(
        url=url, site_key=sitekey, action=action, proxy=proxy, enterprise=_enterprise(enterprise) or True
    ))


@router.get("/task/vercel", response_model=V1Created, summary="v1: create a Vercel task",
             responses=_CREATE_ERRORS, operation_id="v1_create_vercel_task")
@router.get("/task/vercel/", include_in_schema=False)
async def vercel(request: Request, challengeToken: Text = None) -> Response:
    return await _create(request, "vercel", _present(challenge_token=challengeToken))


@router.post("/task/cf-clearance", response_model=V1Created, summary="v1: create a cf-clearance task",
             responses=_CREATE_ERRORS, operation_id="v1_create_cf_clearance_task")
async def cf_clearance(request: Request, body: CfClearanceV1) -> Response:
    return await _create(request, "cf-clearance", _present(
        url=body.url, challenge_body_b64=body.body, proxy=body.proxy
    ))


@router.get("/task/status/{task_id}", response_model=V1Status, summary="v1: poll a task",
            responses=errors(*AUTH, *COMMON, "validation_failed", "not_found"), operation_id="v1_get_task_status")
async def status(request: Request, task_id: str) -> Response:
    key = await authenticate(request, Scope.CLIENT)
    runtime = api_state(request).runtime
    task = await runtime.tasks.get(key.account_id, parse_task_id(task_id))
    result: dict[str, str] | None = None
    error: str | None = None
    if task.solution is not None:
        result = {"solution": str(task.solution.get("token", ""))}
    elif task.error_code is not None:
        # v1 codes are the v2 task codes upper-cased; old clients read result.error, newer ones error.
        error = task.error_code.upper()
        result = {"error": error}
    return JSONBytes({"status": task.status.value, "result": result, "error": error})
