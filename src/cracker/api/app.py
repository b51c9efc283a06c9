"""The ASGI application: routers, the error handlers, middleware and the runtime's lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from cracker import __version__
from cracker.api.client_limits import AddressGate, AddressLimiter, LongPollSlots
from cracker.api.dashboard import install_dashboard
from cracker.api.errors import install_error_handlers
from cracker.api.fast_paths import fast_paths
from cracker.api.middleware import RequestContextMiddleware
from cracker.api.openapi import build_openapi
from cracker.api.protocols import json_api, twocaptcha
from cracker.api.ratelimit import RateLimiter
from cracker.api.routes import account, admin, catalogue, legacy_v1, metrics, tasks, workers
from cracker.api.state import ApiState, attach
from cracker.config import Settings
from cracker.domain.clock import Clock, now
from cracker.logredact import install_log_redaction
from cracker.runtime import Runtime


def create_app(
    settings: Settings | None = None, *, run_migrations: bool = True, access_log: bool = True,
    clock: Clock = now,
) -> RequestContextMiddleware:
    """The ASGI application to serve: the FastAPI app behind the request-context layer.

    The layer sits outside FastAPI (not in its middleware list) so that every answer, including
    FastAPI's own, gets a request id and an access line (``cracker.access``, unless
    ``access_log`` is off), and so that the hot read route skips FastAPI's stack.
    ``clock``: see ``build_runtime`` (tests only; production reads the wall clock).
    """
    settings = settings or Settings()
    install_log_redaction()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = await Runtime.start(settings, run_migrations=run_migrations, clock=clock)
        state.runtime = runtime
        try:
            yield
        finally:
            await runtime.stop()

    app = FastAPI(
        title="Cracker",
        version=__version__,
        summary="Self-hosted captcha-task service: v2 task API, billing in USD, built-in solvers.",
        lifespan=lifespan,
        # /docs is served by install_dashboard with Swagger UI's files from the package, not a CDN.
        docs_url=None,
        redoc_url=None,
    )
    # Each of the api_processes processes enforces its share of the limits (buckets are in memory:
    # sharing them through the database would cost a round trip per request).
    share = settings.api_processes
    state = ApiState(
        docs_base_url=settings.docs_base_url.rstrip("/"),
        rate_limiter=RateLimiter(settings.rate_limit_per_s / share, max(1, round(settings.rate_limit_burst / share))),
        address_limiter=AddressLimiter(
            settings.address_rate_limit_per_s / share, max(1, round(settings.address_rate_limit_burst / share))
        ),
        long_polls=LongPollSlots(settings.max_long_polls_per_account),
        signin_limiter=RateLimiter(settings.dashboard_signin_rate_per_s, settings.dashboard_signin_burst),
    )
    attach(app, state)
    app.add_middleware(
        AddressGate, limiter=state.address_limiter, account_limiter=state.rate_limiter,
        trusted_account=lambda key: state.runtime.accounts.trusted_account(key),
    )
    install_error_handlers(app)
    for module in (tasks, account, catalogue, metrics, legacy_v1, workers, admin):
        app.include_router(module.router)
    for prefix in dict.fromkeys(("", settings.protocol_prefix)):
        app.include_router(json_api.router(prefix))
        app.include_router(twocaptcha.router(prefix))
    install_dashboard(app)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return RequestContextMiddleware(
        app, max_body_bytes=settings.max_body_bytes, fast_path=fast_paths(settings.max_body_bytes),
        access_log=access_log,
    )
