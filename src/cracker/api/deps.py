"""Request dependencies: the runtime's services, authentication with scopes, rate limiting."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from cracker.api.client_limits import AUTHENTICATED, api_key_in
from cracker.api.state import api_state
from cracker.domain.accounts import ApiKeyRecord, Scope
from cracker.domain.errors import InsufficientScope, InvalidApiKey, MissingApiKey, RateLimitExceeded
from cracker.logs import bind_account
from cracker.runtime import Runtime

# auto_error=False: a missing key is our own missing_api_key envelope, not FastAPI's 403.
_api_key_header = APIKeyHeader(name="x-solvium-auth", auto_error=False, description="Your API key")
_bearer = HTTPBearer(auto_error=False, description="The API key as a bearer token (alternative header)")


async def get_runtime(request: Request) -> Runtime:
    # async: FastAPI would run a plain function in a worker thread, a costly hop on every request.
    return api_state(request).runtime


def api_key_of(request: Request) -> str | None:
    """The key from ``x-solvium-auth``, else from ``Authorization: Bearer``."""
    return api_key_in(request.scope)


async def authenticate(request: Request, scope: Scope) -> ApiKeyRecord:
    """Who is calling, with the scope checked and a rate-limit token taken.

    A request without a valid key pays a token of its client address instead (see
    ``cracker.api.client_limits``); an address that has none left is refused before the key is
    looked up, unless the key was found valid moments ago.
    """
    state = request.scope.setdefault("state", {})
    done: tuple[ApiKeyRecord, Scope] | None = state.get(_AUTHENTICATED_AS)
    if done is not None and done[1] is scope:
        # The create fast path authenticated this request (and took its token), then handed it on.
        return done[0]
    return await authenticate_key(request, api_key_of(request), scope)


async def authenticate_key(
    request: Request, key: str | None, scope: Scope, *, missing: str = "x-solvium-auth header missing"
) -> ApiKeyRecord:
    """``authenticate`` for a key read elsewhere (the vendor protocols send it in the body);
    ``missing``: what to tell a request without one."""
    state = request.scope.setdefault("state", {})
    shared = api_state(request)
    addresses = shared.address_limiter
    if not key:
        addresses.charge(request.scope)
        raise MissingApiKey(missing)
    try:
        record = await shared.runtime.accounts.authenticate(
            key, scope, before_lookup=partial(addresses.check, request.scope) if addresses.enabled else None
        )
    except (InvalidApiKey, InsufficientScope):
        addresses.charge(request.scope)
        raise
    state[AUTHENTICATED] = True
    bind_account(record.account_id)
    # Per account, not per key: more keys must not buy a higher rate.
    wait_s = shared.rate_limiter.acquire(record.account_id)
    if wait_s is not None:
        raise RateLimitExceeded(wait_s)
    state[_AUTHENTICATED_AS] = (record, scope)
    return record


#: Where a request's authentication is kept: a request authenticates (and pays its token) once.
_AUTHENTICATED_AS = "cracker.authenticated_as"


def _require(scope: Scope) -> Callable[..., Awaitable[ApiKeyRecord]]:
    async def dependency(
        request: Request,
        # Declared for /openapi.json's security schemes; the key is read by authenticate().
        _header: Annotated[str | None, Security(_api_key_header)],
        _bearer_token: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    ) -> ApiKeyRecord:
        return await authenticate(request, scope)

    return dependency


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
ClientKey = Annotated[ApiKeyRecord, Depends(_require(Scope.CLIENT))]
WorkerKey = Annotated[ApiKeyRecord, Depends(_require(Scope.WORKER))]
AdminKey = Annotated[ApiKeyRecord, Depends(_require(Scope.ADMIN))]
