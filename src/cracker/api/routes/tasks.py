"""Task routes: create (per type, and typed by a "type" field), read (long-poll), cancel, deliveries."""

from __future__ import annotations

from collections.abc import Callable
from functools import reduce
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Header, Query, Request
from pydantic import BaseModel, Field, TypeAdapter, ValidationError, WithJsonSchema, create_model
from starlette.responses import Response

from cracker.api.deps import ClientKey, RuntimeDep
from cracker.api.envelope import JSONBytes, error_body, task_envelope
from cracker.api.errors import validation_error
from cracker.api.params import MAX_WAIT_S, parse_task_id
from cracker.api.poll import read_task
from cracker.api.responses import AUTH, COMMON, errors
from cracker.api.schemas import BatchResponse, DeliveriesModel, ReportModel, ReportRequest, TaskEnvelope
from cracker.api.state import api_state
from cracker.domain.accounts import ApiKeyRecord
from cracker.domain.catalogue import spec_for
from cracker.domain.clock import rfc3339
from cracker.domain.errors import CrackerError, InvalidRequest, OfferNotFound
from cracker.domain.money import format_usd
from cracker.domain.task_types import TASK_TYPES, CallbackUrl, TaskType, resolve_type
from cracker.service.task_batches import MAX_BATCH_ITEMS, BatchItem, ItemError, ItemResult, batch_hash

router = APIRouter(prefix="/v2/tasks", tags=["tasks"])

_CREATE_ERRORS = errors(
    *AUTH, *COMMON, "validation_failed", "invalid_request", "offer_not_found", "insufficient_balance",
    "no_solver_available", "payload_too_large",
)


IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key", max_length=255, min_length=1,
        description="Makes the create safe to retry: the same key and body within 24 h return the "
        "original task (never a second charge); the same key with another body is refused.",
    ),
]


async def create_from_body(
    request: Request, key: ApiKeyRecord, body: BaseModel, idempotency_key: str | None,
) -> Response:
    """Create the task a validated body describes: its type is the model's (a per-type route's) or
    its ``type`` field (the typed route's)."""
    envelope, headers = await create_envelope(request, key, body, idempotency_key)
    return JSONBytes(envelope, status_code=201, headers=headers)


async def create_envelope(
    request: Request, key: ApiKeyRecord, body: BaseModel, idempotency_key: str | None,
) -> tuple[dict[str, Any], dict[str, str]]:
    """``create_from_body``'s answer before it is a response: the 201's envelope and its headers
    (the create fast path sends them itself)."""
    task_type = _TYPE_OF_MODEL.get(type(body))
    if task_type is None:
        resolved = resolve_type(body.type)  # type: ignore[attr-defined]
        assert resolved is not None  # the discriminator admits known types only
        task_type = resolved.name
    runtime = api_state(request).runtime
    params = body.model_dump(mode="json", exclude_unset=True, exclude={"type", "callback_url"})
    callback_url = getattr(body, "callback_url", None)
    created = await runtime.tasks.create(
        key.account_id, task_type, params, callback_url=callback_url, idempotency_key=idempotency_key
    )
    headers = {"Location": f"/v2/tasks/{created.task.id}"}
    if created.replayed:
        headers["Idempotent-Replayed"] = "true"
    return task_envelope(request, created.task), headers


def _schema_name(task_type: TaskType) -> str:
    """``recaptcha-v3`` -> ``RecaptchaV3``: named after the type, since types may share a model
    (two schemas of one name break generated clients)."""
    return "".join(part.capitalize() for part in task_type.name.split("-"))


def _request_model(task_type: TaskType) -> type[BaseModel]:
    """The type's fields plus what every create accepts: an optional callback URL."""
    model: type[BaseModel] = create_model(
        f"{_schema_name(task_type)}TaskRequest",
        __base__=task_type.model,
        callback_url=(
            CallbackUrl | None,
            Field(default=None, description="POSTed the signed envelope when the task ends (see docs/webhooks.md)"),
        ),
    )
    return model


#: Each per-type request model's task type (the typed route's models carry theirs in ``type``).
_TYPE_OF_MODEL: dict[type[BaseModel], str] = {}
#: Per path name (a type or an alias), what validates its body: the create fast path's table.
CREATE_VALIDATORS: dict[str, Callable[[Any], BaseModel]] = {}


def _register_create_route(task_type: TaskType, path_name: str) -> None:
    model = _request_model(task_type)
    _TYPE_OF_MODEL[model] = task_type.name
    CREATE_VALIDATORS[path_name] = model.model_validate

    async def create_task(
        request: Request, key: ClientKey, body: BaseModel, idempotency_key: IdempotencyKey = None
    ) -> Response:
        return await create_from_body(request, key, body, idempotency_key)

    # The body's model is this type's own, chosen at import time: FastAPI reads it from here.
    create_task.__annotations__ = {**create_task.__annotations__, "body": model}

    alias_note = f" (alias of `{task_type.name}`)" if path_name != task_type.name else ""
    router.add_api_route(
        f"/{path_name}",
        create_task,
        methods=["POST"],
        status_code=201,
        response_model=TaskEnvelope,
        responses=_CREATE_ERRORS,
        summary=f"Create a {path_name} task{alias_note}",
        description=f"{task_type.summary}. Holds the offer's price; answers the pending task envelope "
        f"with `Location: /v2/tasks/{{task_id}}`.",
        operation_id=f"create_{path_name.replace('-', '_')}_task",
    )


for _type in TASK_TYPES.values():
    for _name in (_type.name, *_type.aliases):
        _register_create_route(_type, _name)


def _typed_variant(task_type: TaskType) -> type[BaseModel]:
    tags: Any = Literal[(task_type.name, *task_type.aliases)]
    variant: type[BaseModel] = create_model(
        f"{_schema_name(task_type)}TaskWithType",
        __base__=_request_model(task_type),
        type=(tags, Field(description="The task type")),
    )
    return variant


_variants = [_typed_variant(t) for t in TASK_TYPES.values()]
_AnyTask: Any = Annotated[reduce(lambda a, b: a | b, _variants), Field(discriminator="type")]  # type: ignore[arg-type, return-value]


@router.post(
    "",
    status_code=201,
    response_model=TaskEnvelope,
    responses=_CREATE_ERRORS,
    summary="Create a task of the type named in the body",
    operation_id="create_task",
)
async def create_task_typed(
    request: Request, key: ClientKey, body: Annotated[_AnyTask, Body()], idempotency_key: IdempotencyKey = None,
) -> Response:
    return await create_from_body(request, key, body, idempotency_key)


_ITEM = TypeAdapter(_AnyTask)
#: What validates POST /v2/tasks's body (the create fast path's).
TYPED_CREATE: Callable[[Any], BaseModel] = _ITEM.validate_python

# The items' schema as documented: the same typed tasks as POST /v2/tasks (each item is validated
# on its own, so one bad item is answered in its place instead of failing the whole batch).
_ITEM_SCHEMA: dict[str, Any] = {
    "oneOf": [{"$ref": f"#/components/schemas/{v.__name__}"} for v in _variants],
    "discriminator": {"propertyName": "type"},
}


class BatchRequest(BaseModel):
    tasks: Annotated[
        list[Any],
        Field(min_length=1, max_length=MAX_BATCH_ITEMS, description="Up to 100 tasks of any types, as POST "
              "/v2/tasks takes them one at a time"),
        WithJsonSchema({"type": "array", "items": _ITEM_SCHEMA, "minItems": 1, "maxItems": MAX_BATCH_ITEMS}),
    ]


def _batch_item(raw: Any) -> BatchItem | CrackerError:
    if not isinstance(raw, dict):
        return InvalidRequest("Each item of tasks must be a JSON object with a \"type\"")
    try:
        body = _ITEM.validate_python(raw)
    except ValidationError as exc:
        return validation_error(list(exc.errors()))
    resolved = resolve_type(body.type)
    assert resolved is not None  # the discriminator admits known types only
    params = body.model_dump(mode="json", exclude_unset=True, exclude={"type", "callback_url"})
    return BatchItem(resolved.name, params, getattr(body, "callback_url", None))


def _item_result(request: Request, result: ItemResult) -> dict[str, Any]:
    if isinstance(result, ItemError):
        status = spec_for(result.code).http_status or 500
        return {"status": status, "task": None, **error_body(request, result.code, result.message, result.details)}
    return {"status": 201, "task": task_envelope(request, result), "error": None}


@router.post(
    "/batch",
    response_model=BatchResponse,
    responses=errors(*AUTH, *COMMON, "validation_failed", "invalid_request", "payload_too_large"),
    summary="Create up to 100 tasks in one request: one transaction, one answer per item, in order",
    description="Each item is created as `POST /v2/tasks` would create it, or answered with the error that "
    "create would get (its `status` beside it); the items that are created are held in order in one "
    "transaction, so an item the balance left after the items before it cannot pay for gets "
    "`insufficient_balance`. An `Idempotency-Key` names the whole batch: a retry with the same body "
    "answers the same items the same way (never a second charge). Each item counts as one request "
    "against the account's rate limit.",
    operation_id="create_tasks_batch",
)
async def create_tasks_batch(
    request: Request, runtime: RuntimeDep, key: ClientKey, body: BatchRequest, idempotency_key: IdempotencyKey = None,
) -> Response:
    # The request took one token (authentication admitted it); each further item costs one more.
    api_state(request).rate_limiter.charge(key.account_id, len(body.tasks) - 1)
    items = [_batch_item(raw) for raw in body.tasks]
    created = await runtime.batches.create(key.account_id, items, batch_hash(body.tasks), idempotency_key)
    headers = {"Idempotent-Replayed": "true"} if created.replayed else None
    return JSONBytes({"results": [_item_result(request, r) for r in created.results]}, headers=headers)


@router.post("/{task_type}", include_in_schema=False)
async def create_unknown_type(task_type: str, key: ClientKey) -> Response:
    # Every sold type has its own route above; this one only answers for the rest.
    raise OfferNotFound(f"No offer for task type {task_type!r}; GET /v2/offers lists what is sold")


@router.get(
    "/{task_id}",
    response_model=TaskEnvelope,
    responses=errors(*AUTH, *COMMON, "not_found", "validation_failed"),
    summary="Get a task: the same envelope in every state; ?wait=S long-polls until it ends",
    operation_id="get_task",
)
async def get_task(
    request: Request,
    task_id: str,
    key: ClientKey,
    wait: Annotated[
        float | None,
        Query(ge=0, le=MAX_WAIT_S, description="Hold the request up to this many seconds until the task "
              "is completed or rejected, then answer the current envelope"),
    ] = None,
) -> Response:
    return await read_task(request)


@router.delete(
    "/{task_id}",
    response_model=TaskEnvelope,
    responses=errors(*AUTH, *COMMON, "not_found", "validation_failed"),
    summary="Cancel a task: rejected with code `cancelled`, hold released (a finished task is unchanged)",
    operation_id="cancel_task",
)
async def cancel_task(request: Request, task_id: str, runtime: RuntimeDep, key: ClientKey) -> Response:
    task = await runtime.tasks.cancel(key.account_id, parse_task_id(task_id))
    return JSONBytes(task_envelope(request, task))


@router.get(
    "/{task_id}/deliveries",
    response_model=DeliveriesModel,
    responses=errors(*AUTH, *COMMON, "not_found", "validation_failed"),
    summary="The webhook deliveries of a task and every attempt of each",
    operation_id="list_task_deliveries",
)
async def list_deliveries(request: Request, task_id: str, runtime: RuntimeDep, key: ClientKey) -> Response:
    logs = await runtime.webhooks.log(key.account_id, parse_task_id(task_id))
    return JSONBytes({
        "deliveries": [
            {
                "delivery_id": log.delivery_id, "url": log.url, "status": log.status,
                "next_attempt_at": rfc3339(log.next_attempt_at),
                "attempts": [
                    {"attempt": a.attempt, "at": rfc3339(a.at), "status_code": a.status_code, "error": a.error,
                     "duration_ms": a.duration_ms}
                    for a in log.attempts
                ],
            }
            for log in logs
        ]
    })


@router.post(
    "/{task_id}/report",
    response_model=ReportModel,
    responses=errors(
        *AUTH, *COMMON, "not_found", "validation_failed", "invalid_request", "task_not_completed",
        "already_reported", "report_window_closed", "payload_too_large",
    ),
    summary="Report a completed task's answer as right or wrong; a wrong one is refunded within the "
    "operator's share",
    description="Once per task, by its account, within `CRACKER_REPORT_WINDOW_S` of its completion. An incorrect "
    "report refunds the task's cost (a ledger row) while the account's refunds of that task type over the recent "
    "period stay within the operator's share of its completed tasks of that type; beyond it the report is "
    "recorded, not refunded (`refund_refused`). An image-to-text report with `expected` (or a correct one) keeps "
    "the image as a labelled sample of the model that read it.",
    operation_id="report_task",
)
async def report_task(task_id: str, runtime: RuntimeDep, key: ClientKey, body: ReportRequest) -> Response:
    outcome = await runtime.reports.report(
        key.account_id, parse_task_id(task_id), correct=body.correct, expected=body.expected
    )
    return JSONBytes({
        "task_id": outcome.task_id, "correct": outcome.correct, "refunded": outcome.refunded,
        "refund": format_usd(outcome.refund),
        "refund_refused": outcome.refund_refused.value if outcome.refund_refused is not None else None,
        "labelled": outcome.labelled, "balance": format_usd(outcome.balance), "currency": "USD",
        "reported_at": rfc3339(outcome.created_at),
    })
