"""The create fast path: ``POST /v2/tasks/{type}`` and ``POST /v2/tasks``, served ahead of FastAPI.

After the poll, a create is what clients send most, and FastAPI's per-request routing, dependency
solving and body handling cost about as much as the create itself (profile: bench/create_profile.py).
So the request-context layer offers every request here (after the poll fast path): a create with a
JSON object body of known length, which its type's request model accepts, is served by this
module, after the same authentication and rate limit as every route and with the same error
mapping. Anything else (no or too long a Content-Length, a body that is not a JSON object, a field
the model refuses, an odd Idempotency-Key) goes on to the FastAPI route of the same path, with the
body replayed and the authentication kept (it pays its rate-limit token once): so every error a
client can get is still answered by the one error mapping, exactly as before. The FastAPI routes
(``routes/tasks.py``) describe these paths in ``/openapi.json`` and serve the same creates.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.types import Message, Receive, Scope, Send

from cracker.api.deps import authenticate
from cracker.api.envelope import send_json
from cracker.api.errors import error_response_for
from cracker.api.routes.tasks import CREATE_VALIDATORS, TYPED_CREATE, create_envelope
from cracker.domain.accounts import Scope as KeyScope

_PREFIX = "/v2/tasks"
#: 19 digits or more in a row (in a string, or a number orjson would not read exactly).
_LONG_NUMBER = re.compile(rb"\d{19}")
_HUGE = 2.0**63
_MAX_KEY = 255


@dataclass(frozen=True, slots=True)
class _Route:
    """What the access line reads of a matched route, as of FastAPI's: its template."""

    path: str


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


def _declared_length(scope: Scope) -> int | None:
    raw = _header(scope, b"content-length")
    if raw is None or not raw.isdigit():
        return None
    return int(raw)


async def _read_body(receive: Receive, length: int) -> bytes | None:
    """The body, if it arrives whole within its declared length; None otherwise."""
    chunks: list[bytes] = []
    received = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None  # the client went away
        chunk = message.get("body", b"")
        received += len(chunk)
        if received > length:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _has_huge_float(value: Any) -> bool:
    """A float beyond 64-bit integers anywhere in ``value``: maybe such an integer, as orjson read it."""
    if isinstance(value, float):
        return abs(value) >= _HUGE
    if isinstance(value, dict):
        return any(_has_huge_float(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_huge_float(v) for v in value)
    return False


def _replaying(body: bytes, receive: Receive) -> Receive:
    """``receive`` as if the body had not been read: the handed-on route reads it again."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _validator_for(scope: Scope) -> Callable[[Any], BaseModel] | None:
    """What validates the body of a create path (its type's request model), None elsewhere."""
    path: str = scope["path"]
    if path == _PREFIX:
        return TYPED_CREATE
    if not path.startswith(_PREFIX + "/"):
        return None
    return CREATE_VALIDATORS.get(path[len(_PREFIX) + 1:])


async def serve_create(scope: Scope, receive: Receive, send: Send, *, max_body_bytes: int) -> tuple[bool, Receive]:
    """(True, _) when the create was answered here; else (False, the receive to go on with),
    having sent nothing."""
    if scope["method"] != "POST":
        return False, receive
    validate = _validator_for(scope)
    length = _declared_length(scope)
    if validate is None or length is None or length > max_body_bytes:
        return False, receive
    content_type = (_header(scope, b"content-type") or b"").split(b";", 1)[0].strip().lower()
    key_header = _header(scope, b"idempotency-key")
    if content_type != b"application/json" or (key_header is not None and not 0 < len(key_header) <= _MAX_KEY):
        return False, receive
    # The path is its own template (the type is part of it): it names the access line's route.
    scope["route"] = _Route(scope["path"])
    request = Request(scope, receive)
    try:
        key = await authenticate(request, KeyScope.CLIENT)
    except Exception as exc:
        await error_response_for(request, exc)(scope, receive, send)
        return True, receive
    body = await _read_body(receive, length)
    if body is None:
        return False, receive  # FastAPI meets the same truncated or oversized body and answers it
    handed_on = _replaying(body, receive)
    try:
        parsed = orjson.loads(body)
        if not isinstance(parsed, dict):
            return False, handed_on
        if _LONG_NUMBER.search(body) and _has_huge_float(parsed):
            return False, handed_on  # orjson reads integers beyond 64 bits as floats; the stdlib does not
        validated = validate(parsed)
    except (orjson.JSONDecodeError, ValidationError):
        return False, handed_on
    idempotency_key = key_header.decode("latin-1") if key_header is not None else None
    try:
        envelope, headers = await create_envelope(request, key, validated, idempotency_key)
    except Exception as exc:
        await error_response_for(request, exc)(scope, handed_on, send)
        return True, handed_on
    await send_json(send, 201, envelope, [
        (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()
    ])
    return True, handed_on
