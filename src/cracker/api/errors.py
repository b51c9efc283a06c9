"""The one place where errors become the envelope: domain errors, validation and routing errors."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response

from cracker.api.envelope import cracker_error_response, error_response, request_id
from cracker.domain.errors import CrackerError, FieldError, InvalidRequest, OfferNotFound, ValidationFailed
from cracker.domain.task_types import ALIASES, TASK_TYPES

log = logging.getLogger("cracker.api")
_LOCATIONS = {"body", "path", "query", "header", "cookie"}
_TAGS = set(TASK_TYPES) | set(ALIASES)


def _field_name(loc: Sequence[Any], kind: str) -> str:
    if kind == "union_tag_not_found":
        return "type"  # POST /v2/tasks without its "type" field
    parts = list(loc)
    if parts and parts[0] in _LOCATIONS:
        parts = parts[1:]
    # In POST /v2/tasks the body is a union keyed by "type": pydantic puts the tag in the path.
    if len(parts) > 1 and parts[0] in _TAGS:
        parts = parts[1:]
    return ".".join(str(p) for p in parts) or "body"


def field_errors(errors: Sequence[Any]) -> list[FieldError]:
    return [
        FieldError(
            field=_field_name(e.get("loc", ()), str(e.get("type"))),
            code="missing" if e.get("type") == "union_tag_not_found" else str(e.get("type", "invalid")),
            message=str(e.get("msg", "")),
        )
        for e in errors
    ]


def validation_error(errors: Sequence[Any]) -> CrackerError:
    """The domain error a body's validation errors (pydantic's) amount to."""
    kinds = {e.get("type") for e in errors}
    if "json_invalid" in kinds:
        return InvalidRequest("The request body is not valid JSON")
    if any(e.get("type") in ("model_attributes_type", "model_type") and len(tuple(e.get("loc", ()))) <= 1
           for e in errors):
        return InvalidRequest("The request body must be a JSON object (Content-Type: application/json)")
    for e in errors:
        if e.get("type") == "union_tag_invalid":
            tag = (e.get("ctx") or {}).get("tag", "")
            return OfferNotFound(f"No offer for task type {tag!r}; GET /v2/offers lists what is sold")
    details = field_errors(errors)
    return ValidationFailed(details, f"{len(details)} field(s) failed validation")


def _on_validation_error(request: Request, exc: RequestValidationError) -> Response:
    return cracker_error_response(request, validation_error(list(exc.errors())))


def _on_http_error(request: Request, exc: StarletteHTTPException) -> Response:
    if exc.status_code == 404:
        return error_response(request, "not_found", f"No route {request.method} {request.url.path}")
    if exc.status_code == 405:
        return error_response(
            request, "method_not_allowed", f"{request.method} is not allowed on {request.url.path}",
            headers=dict(exc.headers or {}),
        )
    return error_response(request, "invalid_request", str(exc.detail))


def error_response_for(request: Request, exc: Exception) -> Response:
    """The envelope for any exception a route raised: the one error mapping of the API.

    Domain errors carry their code; validation and routing errors are mapped to theirs; anything
    else is a bug, logged with its stack and answered ``internal_error`` without it.
    """
    if isinstance(exc, CrackerError):
        return cracker_error_response(request, exc)
    if isinstance(exc, RequestValidationError):
        return _on_validation_error(request, exc)
    if isinstance(exc, StarletteHTTPException):
        return _on_http_error(request, exc)
    log.error("unhandled error in %s %s (request %s)", request.method, request.url.path, request_id(request),
              exc_info=exc)
    return error_response(request, "internal_error", "Internal server error")


async def _handle(request: Request, exc: Exception) -> Response:
    return error_response_for(request, exc)


async def _on_unexpected(request: Request, exc: Exception) -> Response:
    # Starlette's last-resort handler (ServerErrorMiddleware) answers with this, then re-raises
    # for the log (RequestContextMiddleware logs it once): without it the answer would be a
    # text/plain 500 outside the envelope.
    return error_response(request, "internal_error", "Internal server error")


def install_error_handlers(app: FastAPI) -> None:
    for kind in (CrackerError, RequestValidationError, StarletteHTTPException):
        app.add_exception_handler(kind, _handle)
    app.add_exception_handler(Exception, _on_unexpected)
