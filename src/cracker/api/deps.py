"""Request dependencies: the runtime's services, authentication with scopes, rate limiting."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from cracker.api.ratelimit import RateLimiter
from cracker.domain.accounts import ApiKeyRecord, Scope
from cracker.domain.errors import MissingApiKey, RateLimitExceeded
from cracker.runtime import Runtime

# auto_error=False: a missing key is our own missing_api_key envelope, not FastAPI's 403.
_api_key_header = APIKeyHeader(name="x-solvium-auth", auto_error=False, description="Your API key")
_bearer = HTTPBearer(auto_error=False, description="The API key as a bearer token (alternative header)")


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def _require(scope: Scope) -> Callable[..., Awaitable[ApiKeyRecord]]:
    async def authenticate(
        request: Request,
        header_key: Annotated[str | None, Security(_api_key_header)],
        bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    ) -> ApiKeyRecord:
        key = header_key or (bearer.credentials if bearer is not None else None)
        if not key:
            raise MissingApiKey("x-solvium-auth header missing")
        runtime = get_runtime(request)
        record = await runtime.accounts.authenticate(key, scope)
        limiter: RateLimiter = request.app.state.rate_limiter
        wait_s = limiter.acquire(record.id)
        if wait_s is not None:
            raise RateLimitExceeded(wait_s)
        return record

    return authenticate


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
ClientKey = Annotated[ApiKeyRecord, Depends(_require(Scope.CLIENT))]
AdminKey = Annotated[ApiKeyRecord, Depends(_require(Scope.ADMIN))]
