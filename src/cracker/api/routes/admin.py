"""Operator routes (admin-scoped keys): an account's API keys, listed, created and revoked."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body
from starlette.responses import Response

from cracker.api.deps import AdminKey, RuntimeDep
from cracker.api.envelope import JSONBytes
from cracker.api.params import parse_id
from cracker.api.responses import AUTH, COMMON, errors
from cracker.api.schemas import ApiKeyListModel, ApiKeyModel, CreateKeyRequest, IssuedKeyModel
from cracker.domain.accounts import ApiKeyInfo, Scope
from cracker.domain.clock import rfc3339

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
