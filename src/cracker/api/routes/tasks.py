"""Task routes: create (per type, and typed by a "type" field), read."""

from __future__ import annotations

from functools import reduce
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Body, Request
from pydantic import BaseModel, Field, create_model
from starlette.responses import Response
from starlette.routing import Route

from cracker.api.deps import ClientKey, RuntimeDep, authenticate
from cracker.api.envelope import JSONBytes, task_envelope
from cracker.api.responses import AUTH, COMMON, errors
from cracker.api.schemas import TaskEnvelope
from cracker.domain.accounts import Scope
from cracker.domain.errors import FieldError, OfferNotFound, ValidationFailed
from cracker.domain.task_types import TASK_TYPES, TaskType, resolve_type
from cracker.runtime import Runtime

router = APIRouter(prefix="/v2/tasks", tags=["tasks"])

_CREATE_ERRORS = errors(
    *AUTH, *COMMON, "validation_failed", "invalid_request", "offer_not_found", "insufficient_balance",
    "no_solver_available", "payload_too_large",
)


async def _create(request: Request, runtime: RuntimeDep, key: ClientKey, task_type: str, body: BaseModel) -> Response:
    params = body.model_dump(mode="json", exclude_unset=True, exclude={"type"})
    task = await runtime.tasks.create(key.account_id, task_type, params)
    return JSONBytes(
        task_envelope(request, task), status_code=201, headers={"Location": f"/v2/tasks/{task.id}"}
    )


def _register_create_route(task_type: TaskType, path_name: str) -> None:
    model = task_type.model

    async def create_task(request: Request, runtime: RuntimeDep, key: ClientKey, body: BaseModel) -> Response:
        return await _create(request, runtime, key, task_type.name, body)

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
        f"{task_type.model.__name__}WithType",
        __base__=task_type.model,
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
    request: Request, runtime: RuntimeDep, key: ClientKey, body: Annotated[_AnyTask, Body()]
) -> Response:
    name = body.type
    resolved = resolve_type(name)
    assert resolved is not None  # the discriminator admits known types only
    return await _create(request, runtime, key, resolved.name, body)


@router.post("/{task_type}", include_in_schema=False)
async def create_unknown_type(task_type: str, key: ClientKey) -> Response:
    # Every sold type has its own route above; this one only answers for the rest.
    raise OfferNotFound(f"No offer for task type {task_type!r}; GET /v2/offers lists what is sold")


async def read_task(request: Request) -> Response:
    """GET /v2/tasks/{task_id}, the route clients poll, as a bare Starlette endpoint.

    FastAPI's per-request dependency solving and validation cost more than the whole read here
    (measured in bench/task_read_bench.py), so RequestContextMiddleware serves this route itself,
    ahead of FastAPI; the FastAPI route below describes it in /openapi.json and answers the same.
    """
    key = await authenticate(request, Scope.CLIENT)
    raw_id: str = request.path_params["task_id"]
    try:
        task_id = str(UUID(raw_id))
    except ValueError:
        raise ValidationFailed(
            [FieldError("task_id", "uuid_parsing", f"Input should be a valid UUID, got {raw_id[:64]!r}")]
        ) from None
    runtime: Runtime = request.app.state.runtime
    task = await runtime.tasks.get(key.account_id, task_id)
    return JSONBytes(task_envelope(request, task))


fast_routes = [Route("/v2/tasks/{task_id}", read_task, methods=["GET"], include_in_schema=False)]


@router.get(
    "/{task_id}",
    response_model=TaskEnvelope,
    responses=errors(*AUTH, *COMMON, "not_found", "validation_failed"),
    summary="Get a task: the same envelope in every state",
    operation_id="get_task",
)
async def get_task(request: Request, task_id: str, key: ClientKey) -> Response:
    return await read_task(request)
