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


async def get_runtime(request: Request) -> Runtime:
    # async: FastAPI would run a plain function in a worker thread, a costly hop on every request.
    runtime: Runtime = request.app.state.runtime
    return runtime


def api_key_of(request: Request) -> str | None:
    """The key from ``x-solvium-auth``, else from ``Authorization: Bearer``."""
    # Scans the raw ASGI headers: building Starlette's Headers object costs more than this.
    authorization = b""
    name: bytes
    value: bytes
    for name, value in request.scope["headers"]:
        if name == b"x-solvium-auth" and value:
            return value.decode("latin-1")
        if name == b"authorization":
            authorization = value
    scheme, _, credentials = authorization.decode("latin-1").partition(" ")
    return (credentials.strip() or None) if scheme.lower() == "bearer" else None


async def authenticate(request: Request, scope: Scope) -> ApiKeyRecord:
    """Who is calling, with the scope checked and a rate-limit token taken."""
    key = api_key_of(request)
    if not key:
        raise MissingApiKey("x-solvium-auth header missing")
    runtime: Runtime = request.app.state.runtime
    record = await runtime.accounts.authenticate(key, scope)
    limiter: RateLimiter = request.app.state.rate_limiter
    wait_s = limiter.acquire(record.id)
    if wait_s is not None:
        raise RateLimitExceeded(wait_s)
    return record


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
