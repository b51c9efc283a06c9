"""The error responses each route documents in /openapi.json."""

from __future__ import annotations

from typing import Any

from cracker.api.schemas import ErrorEnvelope
from cracker.domain.catalogue import CATALOGUE


def errors(*codes: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for these error codes, grouped by HTTP status."""
    by_status: dict[int, list[str]] = {}
    for code in dict.fromkeys(codes):  # AUTH and COMMON share rate_limit_exceeded
        status = CATALOGUE[code].http_status
        assert status is not None, code
        by_status.setdefault(status, []).append(code)
    return {
        status: {"model": ErrorEnvelope, "description": "Error envelope; code: " + ", ".join(sorted(names))}
        for status, names in sorted(by_status.items())
    }


#: Every authenticated route can answer these.
AUTH = ("missing_api_key", "invalid_api_key", "insufficient_scope", "rate_limit_exceeded")
#: Every route can answer these (rate_limit_exceeded: the per-address limit on requests without
#: a valid key covers public routes too).
COMMON = ("internal_error", "service_unavailable", "rate_limit_exceeded")
