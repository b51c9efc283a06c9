"""Operator routes (admin-scoped keys): an account's API keys, listed, created and revoked; the task
types its worker pools may serve; what remote pools did to a task."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from cracker.api.deps import AdminKey, RuntimeDep
from cracker.api.envelope import JSONBytes
from cracker.api.params import canonical_types, parse_id
from cracker.api.responses import AUTH, COMMON, errors
from cracker.api.schemas import ApiKeyListModel, ApiKeyModel, CreateKeyRequest, IssuedKeyModel
from cracker.domain.accounts import ApiKeyInfo, Scope
from cracker.domain.clock import rfc3339
from cracker.domain.workers import PoolGrant, TaskEvent, allowed_pool_types

router = APIRouter(prefix="/v2/admin", tags=["admin"])


def key_json(info: ApiKeyInfo) -> dict[str, str | None]:
    return {
        "key_id": info.id, "account_id": info.account_id, "prefix": info.prefix, "scope": info.scope.value,
        "created_at": rfc3339(info.created_at),
        "revoked_at": rfc3339(info.revoked_at) if info.revoked_at is not None else None,
    }


@router.get(
    "/accounts/{account_id}/keys", response_model=ApiKeyListModel,
    responses=errors(*AUTH, *COMMON, "not_found", "validation_failed"),
    summary="An account's API keys, revoked ones included (never the keys themselves)", operation_id="list_keys",
)
async def list_keys(account_id: str, runtime: RuntimeDep, _admin: AdminKey) -> Response:
    found = await runtime.accounts.list_keys(parse_id(account_id, "account_id"))
    return JSONBytes({"keys": [key_json(info) for info in found]})


@router.post(
    "/accounts/{account_id}/keys", status_code=201, response_model=IssuedKeyModel,
    responses=errors(*AUTH, *COMMON, "not_found", "validation_failed"),
    summary="Create an API key for an account (the key is in this answer only)", operation_id="create_key",
)
async def create_key(
    account_id: str, runtime: RuntimeDep, _admin: AdminKey,
    body: Annotated[CreateKeyRequest | None, Body()] = None,
) -> Response:
    scope = Scope((body or CreateKeyRequest()).scope)
    issued = await runtime.accounts.create_key(parse_id(account_id, "account_id"), scope)
    return JSONBytes(
        {"key_id": issued.key_id, "account_id": issued.account_id, "scope": issued.scope.value,
         "api_key": issued.api_key},
        status_code=201,
    )


@router.delete(
    "/keys/{key_id}", response_model=ApiKeyModel,
    responses=errors(*AUTH, *COMMON, "not_found", "validation_failed"),
    summary="Revoke an API key: refused by every process within the auth cache's lifetime (5 s by default)",
    operation_id="revoke_key",
)
async def revoke_key(key_id: str, runtime: RuntimeDep, _admin: AdminKey) -> Response:
    info = await runtime.accounts.revoke_key(parse_id(key_id, "key_id"))
    return JSONBytes(key_json(info))


class PoolTypesRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    types: list[str] = Field(default_factory=list, max_length=50,
                             description="Task types allowed beyond the default (replaces the previous grant)")
    all: bool = Field(default=False, description="Every task type, present and future")


class PoolTypesModel(BaseModel):
    account_id: str
    all: bool
    types: list[str] = Field(description="Types granted beyond the default")
    allowed: list[str] = Field(description="What the account's worker keys may register for and lease now")
    updated_at: str | None


class PoolAccountsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    accounts: list[str] | None = Field(
        min_length=1, max_length=1000,
        description="The accounts whose tasks this account's pools may lease (replaces the previous limit); "
        "null: every account's",
    )


class PoolAccountsModel(BaseModel):
    account_id: str
    accounts: list[str] | None = Field(description="The accounts its pools lease tasks of; null: every account's")


class TaskEventModel(BaseModel):
    at: str
    event: str = Field(description="leased | completed | rejected")
    worker_id: str
    worker_name: str
    pool_account_id: str | None = Field(description="The account of the worker key that did it")
    attempt: int
    error_code: str | None


class TaskHistoryModel(BaseModel):
    task_id: str
    account_id: str
    type: str
    status: str
    events: list[TaskEventModel]


def _pool_types_json(account_id: str, grant: PoolGrant | None) -> dict[str, Any]:
    return {
        "account_id": account_id, "all": grant.all_types if grant else False,
        "types": list(grant.types) if grant else [], "allowed": sorted(allowed_pool_types(grant)),
        "updated_at": rfc3339(grant.updated_at) if grant else None,
    }


def _event_json(event: TaskEvent) -> dict[str, Any]:
    return {
        "at": rfc3339(event.at), "event": event.event, "worker_id": event.worker_id, "worker_name": event.worker_name,
        "pool_account_id": event.pool_account_id, "attempt": event.attempt, "error_code": event.error_code,
    }


@router.get(
    "/accounts/{account_id}/pool-types", response_model=PoolTypesModel,
    responses=errors(*AUTH, *COMMON, "not_found", "validation_failed"),
    summary="The task types an account's worker pools may serve", operation_id="get_pool_types",
)
async def get_pool_types(account_id: str, runtime: RuntimeDep, _admin: AdminKey) -> Response:
    account_id = parse_id(account_id, "account_id")
    grant = await runtime.worker_service.pools.get(account_id)
    return JSONBytes(_pool_types_json(account_id, grant))


@router.put(
    "/accounts/{account_id}/pool-types", response_model=PoolTypesModel,
    responses=errors(*AUTH, *COMMON, "not_found", "validation_failed"),
    summary="Allow an account's worker pools more task types than the default (replaces the grant; "
    "`{\"types\": []}` returns to the default)", operation_id="set_pool_types",
)
async def set_pool_types(account_id: str, body: PoolTypesRequest, runtime: RuntimeDep, _admin: AdminKey) -> Response:
    account_id = parse_id(account_id, "account_id")
    types = canonical_types(body.types)
    pools = runtime.worker_service.pools
    if body.all or types:
        grant: PoolGrant | None = await pools.grant(account_id, types=types, all_types=body.all)
    else:
        await pools.reset(account_id)
        grant = None
    return JSONBytes(_pool_types_json(account_id, grant))


@router.get(
    "/accounts/{account_id}/pool-accounts", response_model=PoolAccountsModel,
    responses=errors(*AUTH, *COMMON, "not_found", "validation_failed"),
    summary="The accounts whose tasks an account's worker pools may lease", operation_id="get_pool_accounts",
)
async def get_pool_accounts(account_id: str, runtime: RuntimeDep, _admin: AdminKey) -> Response:
    account_id = parse_id(account_id, "account_id")
    served = await runtime.worker_service.pools.served_accounts(account_id)
    return JSONBytes({"account_id": account_id, "accounts": served})


@router.put(
    "/accounts/{account_id}/pool-accounts", response_model=PoolAccountsModel,
    responses=errors(*AUTH, *COMMON, "not_found", "validation_failed"),
    summary="Limit an account's worker pools to the tasks of named accounts (`{\"accounts\": null}`: any "
    "account's); read at every lease call", operation_id="set_pool_accounts",
)
async def set_pool_accounts(
    account_id: str, body: PoolAccountsRequest, runtime: RuntimeDep, _admin: AdminKey
) -> Response:
    account_id = parse_id(account_id, "account_id")
    wanted = None
    if body.accounts is not None:
        wanted = [parse_id(raw, f"accounts.{index}") for index, raw in enumerate(body.accounts)]
    served = await runtime.worker_service.pools.limit(account_id, wanted)
    return JSONBytes({"account_id": account_id, "accounts": served})


@router.get(
    "/tasks/{task_id}/history", response_model=TaskHistoryModel,
    responses=errors(*AUTH, *COMMON, "not_found", "validation_failed"),
    summary="What remote worker pools did to a task: each lease, completion and rejection, with the "
    "worker and the pool's account", operation_id="task_history",
)
async def task_history(task_id: str, runtime: RuntimeDep, _admin: AdminKey) -> Response:
    history = await runtime.worker_service.pools.history(parse_id(task_id, "task_id"))
    task = history.task
    return JSONBytes({
        "task_id": task.id, "account_id": task.account_id, "type": task.type, "status": task.status.value,
        "events": [_event_json(event) for event in history.events],
    })
