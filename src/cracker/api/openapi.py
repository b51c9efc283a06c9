"""/openapi.json: FastAPI's document, completed with what generators need to model our errors."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from cracker.api.envelope import LEGACY_V1_PREFIX
from cracker.api.schemas import V1Error
from cracker.domain.catalogue import CATALOGUE, spec_for

#: Every route that reads a JSON body can answer these, whatever its own list says.
_BODY_ERRORS = ("invalid_request", "payload_too_large")


def build_openapi(app: FastAPI) -> dict[str, Any]:
    doc = get_openapi(
        title=app.title,
        version=app.version,
        summary=app.summary,
        description=(
            "Wire-compatible with the v2 captcha-task API. Every non-2xx answer is the error "
            "envelope `{\"error\": {code, message, retryable, doc_url, request_id, details}}`; "
            "`GET /v2/errors` lists every code. Every response carries `x-request-id`."
        ),
        routes=app.routes,
    )
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    # The error code is a closed set today and only ever grows: publish it as an enum.
    body = schemas.get("ErrorBody")
    if body is not None:
        body["properties"]["code"]["enum"] = [c for c, s in CATALOGUE.items() if s.kind == "api"]
    task_error = schemas.get("TaskError")
    if task_error is not None:
        task_error["properties"]["code"]["enum"] = [c for c, s in CATALOGUE.items() if s.kind == "task"]
    envelope = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}}
    legacy_error = V1Error.model_json_schema(ref_template="#/components/schemas/{model}")
    legacy_error.pop("$defs", None)  # ErrorBody and its parts are components already
    schemas["V1Error"] = legacy_error
    legacy = {"application/json": {"schema": {"$ref": "#/components/schemas/V1Error"}}}
    for path, path_item in doc.get("paths", {}).items():
        for operation in path_item.values():
            responses = operation.get("responses", {})
            if "requestBody" in operation:
                for code in _BODY_ERRORS:
                    status = str(spec_for(code).http_status)
                    responses.setdefault(status, {"description": f"Error envelope; code: {code}"})
            # FastAPI adds its own 422 "HTTPValidationError" to routes with parameters; ours is the envelope.
            if "422" in responses and "ErrorEnvelope" not in str(responses["422"]):
                responses["422"] = {
                    "description": "Error envelope; code: validation_failed (details[] names each field)"
                }
            # Errors are JSON even where the success is HTML or Prometheus text.
            for status, response in responses.items():
                if status[0] in "45":
                    response["content"] = legacy if path.startswith(LEGACY_V1_PREFIX) else envelope
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    return doc
